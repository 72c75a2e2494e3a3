"""The paper's Table 1 from one command: ``python -m minivrnn.experiment table1 --data speech --seeds 0 1 2``.

Trains the five models of Table 1 (RNN-Gauss, RNN-GMM, VRNN-I-Gauss, VRNN-Gauss, VRNN-GMM) with one budget
(the same sizes, epochs, patience and learning rate for all) on ONE fixed split (``--split-seed``), once per
initialisation seed, evaluates each best checkpoint on the test split, and writes to ``--out``:

- ``runs/<model>-seed<k>/``: each run's folder (checkpoints, metrics, ``train.log``, ``result.json``);
- ``runs.csv``: one row per run;
- ``table1.md``: per model the mean and spread over seeds of the test log-likelihood (importance-sampled for
  the VRNNs, exact for the RNNs), the ELBO and its KL and reconstruction terms, per step; then the paired
  differences between models (same seed, same test sequences): their mean, spread, win counts, and whether
  the gap exceeds the seed-to-seed spread;
- ``table1.png``: every run's test log-likelihood per step, by model.

Stopped (Ctrl-C, a kill), the same command continues where it stopped: finished runs are kept, an interrupted
one resumes from its ``last.npz``. Adding seeds to a finished experiment runs only the new ones.
"""
import argparse
import contextlib
import csv
import json
import os
import sys
import time
from itertools import combinations

import numpy as np

from . import data as datalib
from . import evaluate as evaluatemod
from . import train as trainmod
from .checkpoint import CheckpointError
from .cli import DefaultsFormatter, non_empty, non_negative_int, parse_args, positive
from .files import atomic_file

TABLE1 = ("rnn-gauss", "rnn-gmm", "vrnn-i-gauss", "vrnn-gauss", "vrnn-gmm")  # the paper's row order
# The budget every model gets. The full one is train's defaults (with early stopping); --quick is small
# enough for a lesson or CI: it shows the machinery, not the paper's ordering.
FULL = dict(z_dim=32, h_dim=128, feat_dim=128, epochs=100, patience=30, batch_size=32, max_len=40, lr=1e-3,
            valid_draws=5, samples=50)
QUICK = dict(z_dim=8, h_dim=32, feat_dim=32, epochs=40, patience=30, batch_size=32, max_len=40, lr=3e-3,
             valid_draws=1, samples=10)
BUDGET_FLAGS = tuple(FULL)
RESULT = "result.json"


class ExperimentError(Exception):
    """A problem with the request or the experiment folder (one line, exit code 2)."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minivrnn.experiment", description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsFormatter)
    p.add_argument("experiment", choices=("table1",), help="which experiment (the paper's Table 1)")
    p.add_argument("--data", default="speech", help="any data train accepts: a shipped name or a path")
    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2],
                   help="initialisation seeds: each model is trained once per seed")
    p.add_argument("--split-seed", type=non_negative_int, default=0,
                   help="the one train/validation/test split every run shares")
    p.add_argument("--quick", action="store_true",
                   help=f"a small budget that runs in minutes ({', '.join(f'{k}={v}' for k, v in QUICK.items())}) "
                        "instead of the full one "
                        f"({', '.join(f'{k}={v}' for k, v in FULL.items())}); flags given override either")
    p.add_argument("--models", nargs="+", choices=TABLE1, default=list(TABLE1), help="a subset of the rows")
    p.add_argument("--cell", choices=("gru", "lstm"), default="gru", help="the recurrence f of every model")
    for name, kind in (("z_dim", int), ("h_dim", int), ("feat_dim", int), ("epochs", int), ("patience", int),
                       ("batch_size", int), ("max_len", int), ("lr", float), ("valid_draws", int)):
        p.add_argument("--" + name.replace("_", "-"), type=positive(kind), help=f"train's --{name.replace('_', '-')}")
    p.add_argument("--samples", type=positive(int), help="S, importance samples per test sequence")
    p.add_argument("--out", type=non_empty, help="experiment folder [default: runs/table1-<data>]")
    return p


def resolve(args):
    budget = QUICK if args.quick else FULL
    for key in BUDGET_FLAGS:
        if getattr(args, key) is None:
            setattr(args, key, budget[key])
    if args.out is None:
        args.out = os.path.join("runs", f"table1-{os.path.basename(str(args.data).rstrip('/'))}")
    args.seeds = sorted(set(args.seeds))
    return args


def settings(args):
    """What every run of the experiment shares (stored in experiment.json: a restart must not change it)."""
    return {"data": str(args.data), "split_seed": args.split_seed, "cell": args.cell,
            **{k: getattr(args, k) for k in BUDGET_FLAGS}}


def main(argv=None):
    args = resolve(parse_args(build_parser(), argv))
    try:
        trainmod.make_run_folder(args.out)
        with trainmod.run_folder_lock(args.out):  # one experiment per folder, as one training per run folder
            return run(args)
    except (ExperimentError, trainmod.TrainError, datalib.DataError, CheckpointError,
            evaluatemod.EvaluateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: --out {args.out}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue", file=sys.stderr)
        return 130


def run(args):
    check_settings(args)
    runs = [(model, seed) for seed in args.seeds for model in args.models]
    print(f"Table 1 on {args.data}: {len(args.models)} models x {len(args.seeds)} seeds, split seed "
          f"{args.split_seed} -> {args.out}")
    for i, (model, seed) in enumerate(runs, 1):
        folder = run_folder(args, model, seed)
        result = read_result(folder)
        if result is None:
            result = train_and_evaluate(args, model, seed, folder)
            state = "done"
        else:
            state = "kept"
        print(f"[{i}/{len(runs)}] {model} seed {seed}: {run_line(result)} ({state})", flush=True)
    results = [read_result(run_folder(args, m, s)) for m, s in runs]
    write_outputs(args, results)
    print(f"{os.path.join(args.out, 'table1.md')}, runs.csv and table1.png written")
    return 0


def check_settings(args):
    path = os.path.join(args.out, "experiment.json")
    wanted = settings(args)
    if os.path.exists(path):
        try:
            with open(path) as f:
                stored = json.load(f)
        except (OSError, ValueError) as e:
            raise ExperimentError(f"{path}: not readable as the experiment's settings ({e})") from None
        if stored != wanted:
            diff = ", ".join(f"{k} {stored.get(k)!r} (now {wanted.get(k)!r})" for k in sorted(set(stored) | set(wanted))
                             if stored.get(k) != wanted.get(k))
            raise ExperimentError(f"--out {args.out}: this experiment was started with other settings: {diff}; "
                                  f"run it with its own settings to continue, or choose another --out")
        return
    with atomic_file(path, suffix=".json") as tmp:
        with open(tmp, "w") as f:
            json.dump(wanted, f, indent=1)


def run_folder(args, model, seed):
    return os.path.join(args.out, "runs", f"{model}-seed{seed}")


def read_result(folder):
    path = os.path.join(folder, RESULT)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ExperimentError(f"{path}: not a readable result ({e}); delete it to redo the run") from None


def train_argv(args, model, seed, folder):
    """The train command line of one run: the shared budget, this model and this seed."""
    if os.path.exists(os.path.join(folder, "last.npz")):
        return ["--resume", "--out", folder]  # (an interrupted run: its own stored flags)
    argv = ["--data", str(args.data), "--model", model, "--cell", args.cell, "--seed", str(seed),
            "--split-seed", str(args.split_seed), "--out", folder, "--no-plots"]
    for key in ("z_dim", "h_dim", "feat_dim", "epochs", "patience", "batch_size", "max_len", "lr", "valid_draws"):
        argv += ["--" + key.replace("_", "-"), str(getattr(args, key))]
    return argv


def train_and_evaluate(args, model, seed, folder):
    """Train one run (its output goes to train.log), evaluate its best checkpoint, store result.json."""
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, "train.log")
    start = time.time()
    with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        code = trainmod.main(train_argv(args, model, seed, folder))
    if code == 130:
        raise KeyboardInterrupt
    if code == 2:
        raise ExperimentError(f"{model} seed {seed}: train stopped: {last_error(log)} (see {log})")
    history = []
    if os.path.exists(os.path.join(folder, "metrics.jsonl")):  # (a run that diverged at once has none)
        with open(os.path.join(folder, "metrics.jsonl")) as f:
            history = [json.loads(line) for line in f]
    result = {"model": model, "seed": seed, "split_seed": args.split_seed, "epochs": len(history),
              "train_seconds": round(time.time() - start, 1), "status": "diverged" if code == 3 else "ok"}
    if code == 0:  # a diverged run (exit 3) is reported as such, not evaluated
        best = min(history, key=lambda r: r["valid_loss"])
        config, values = evaluatemod.evaluate_checkpoint(os.path.join(folder, "best.npz"), split="test",
                                                         samples=args.samples, seed=seed)
        s = evaluatemod.summarise(values)
        result.update(best_epoch=best["epoch"], latent=config.latent, samples=args.samples if config.latent else None,
                      sequences=s["sequences"], steps=s["steps"], ess_median=s["ess"]["median"],
                      per_sequence_log_likelihood=[float(v) for v in values["log_likelihood"]],
                      **{f"{name}_per_step": s[name]["per_step"] for name in ("elbo", "rec", "kl", "log_likelihood")},
                      **{f"{name}_per_sequence": s[name]["per_sequence"] for name in ("elbo", "log_likelihood")},
                      log_likelihood_se_per_step=s["log_likelihood"]["se_per_step"])
    with atomic_file(os.path.join(folder, RESULT), suffix=".json") as tmp:  # written last: the run's "done"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
    return result


def last_error(log):
    with open(log) as f:
        lines = [line.strip() for line in f if line.startswith("error:")]
    return lines[-1][len("error:"):].strip() if lines else "no error line"


def run_line(result):
    if result["status"] != "ok":
        return f"diverged after {result['epochs']} epochs (not evaluated)"
    kind = "exact" if not result["latent"] else f"IS, S={result['samples']}"
    return (f"{result['epochs']} epochs (best {result['best_epoch']}), test log-likelihood "
            f"{result['log_likelihood_per_step']:.3f} nats per step ({kind}), ELBO {result['elbo_per_step']:.3f}, "
            f"KL {result['kl_per_step']:.3f}, {result['train_seconds']:.0f} s")


CSV_COLUMNS = ("model", "seed", "split_seed", "status", "epochs", "best_epoch", "train_seconds", "sequences",
               "steps", "samples", "log_likelihood_per_step", "log_likelihood_se_per_step", "elbo_per_step",
               "rec_per_step", "kl_per_step", "log_likelihood_per_sequence", "elbo_per_sequence", "ess_median")


def write_outputs(args, results):
    with atomic_file(os.path.join(args.out, "runs.csv"), suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for r in results:
                writer.writerow([r.get(k, "") if r.get(k) is not None else "" for k in CSV_COLUMNS])
    with atomic_file(os.path.join(args.out, "table1.md"), suffix=".md") as tmp:
        with open(tmp, "w") as f:
            f.write(markdown_table(args, results))
    from . import plots

    plots.plot_table1(results, args.models, os.path.join(args.out, "table1.png"))


def by_model(results, models):
    """{model: {seed: result}} for the runs that finished (diverged ones are listed apart)."""
    table = {m: {} for m in models}
    for r in results:
        if r["status"] == "ok":
            table[r["model"]][r["seed"]] = r
    return table


def mean_sd(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else float("nan"))


def paired_differences(table, a, b, key="log_likelihood_per_step"):
    """Model a minus model b, seed by seed (same split, same test sequences): (mean, sd, wins of a, seeds)."""
    seeds = sorted(set(table[a]) & set(table[b]))
    diffs = [table[a][s][key] - table[b][s][key] for s in seeds]
    if not diffs:
        return None
    mean, sd = mean_sd(diffs)
    return mean, sd, sum(d > 0 for d in diffs), len(diffs)


def markdown_table(args, results):
    table = by_model(results, args.models)
    ok = [r for r in results if r["status"] == "ok"]
    first = ok[0] if ok else {}
    lines = [f"# Table 1, measured: {args.data}", "",
             f"Command: `python -m minivrnn.experiment table1 {' '.join(command_flags(args))}`", "",
             f"Budget for every model: z_dim {args.z_dim}, h_dim {args.h_dim}, feat_dim {args.feat_dim}, "
             f"{args.cell.upper()} cell, at most {args.epochs} epochs with patience {args.patience} (validation "
             f"bound averaged over {args.valid_draws} noise draw{'s' * (args.valid_draws > 1)}), batch {args.batch_size}, crops of "
             f"{args.max_len} steps, Adam lr {args.lr}. One split (split seed {args.split_seed}); seeds "
             f"{', '.join(map(str, args.seeds))} vary the initialisation, batches and noise. Test split: "
             f"{first.get('sequences', '?')} sequences, {first.get('steps', '?')} steps x_t.", "",
             "Log-likelihoods in nats per step x_t of the normalised data (higher is better): mean ± standard "
             "deviation over seeds. The VRNNs' log-likelihood is the importance-sampled estimate with "
             f"S = {args.samples} (a lower bound in expectation); the RNNs' is exact and equals their ELBO "
             "(no KL term).", "",
             "| model | log-likelihood (~) | ELBO (>=) | reconstruction | KL | per sequence (~) | seeds |",
             "|---|---|---|---|---|---|---|"]
    fmt = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.3f}" if np.isfinite(ms[1]) else f"{ms[0]:.3f}"
    for m in args.models:
        runs = list(table[m].values())
        if not runs:
            lines.append(f"| {m} | (no finished run) | | | | | 0 |")
            continue
        col = lambda key: fmt(mean_sd([r[key] for r in runs]))
        exact = " (exact)" if not runs[0]["latent"] else ""
        lines.append(f"| {m} | {col('log_likelihood_per_step')}{exact} | {col('elbo_per_step')} | "
                     f"{col('rec_per_step')} | {col('kl_per_step')} | {col('log_likelihood_per_sequence')} | "
                     f"{len(runs)} |")
    diverged = [f"{r['model']} seed {r['seed']}" for r in results if r["status"] != "ok"]
    if diverged:
        lines += ["", f"Diverged (stopped with exit 3, left out above): {', '.join(diverged)}."]
    lines += ["", "## Paired differences", "",
              "Row model minus column model, test log-likelihood per step, seed by seed (the same test "
              "sequences): mean ± standard deviation over seeds, and in how many seeds the first model won. "
              "\"Exceeds the spread\": the mean gap is larger than the standard deviation of the gap across "
              "seeds (with few seeds, a rough sign, not a test).", "",
              "| models | mean gap | spread (sd) | wins | exceeds the spread |", "|---|---|---|---|---|"]
    for a, b in combinations(args.models, 2):
        d = paired_differences(table, a, b)
        if d is None:
            continue
        mean, sd, wins, n = d
        exceeds = "n/a (one seed)" if n < 2 else ("yes" if abs(mean) > sd else "no")
        lines.append(f"| {a} − {b} | {mean:+.3f} | {sd:.3f} | {wins}/{n} | {exceeds} |")
    lines += ["", "Every run: `runs.csv`; each run's folder: `runs/<model>-seed<k>/`; the plot: `table1.png`.", ""]
    return "\n".join(lines)


def command_flags(args):
    flags = [f"--data {args.data}", "--seeds " + " ".join(map(str, args.seeds)), f"--split-seed {args.split_seed}"]
    if args.quick:
        flags.append("--quick")
    if list(args.models) != list(TABLE1):
        flags.append("--models " + " ".join(args.models))
    budget = QUICK if args.quick else FULL
    flags += [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in BUDGET_FLAGS if getattr(args, k) != budget[k]]
    if args.cell != "gru":
        flags.append(f"--cell {args.cell}")
    return flags


if __name__ == "__main__":
    sys.exit(main())
