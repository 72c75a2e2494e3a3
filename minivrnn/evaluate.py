"""Evaluate a checkpoint on held-out data: ``python -m minivrnn.evaluate CHECKPOINT``.

Prints, per sequence and per time step x_t (a frame of speech, a pen point): the ELBO (">=", eq. 10) with its
reconstruction and KL terms, and the importance-sampled log-likelihood estimate with S samples ("~"), with its
standard error over the sequences and the effective sample size of the importance weights. The RNN baselines
have no latent variable: their log-likelihood is exact (eq. 2) and is printed once. Writes one line per
sequence to a CSV beside the checkpoint, named after the settings.

Choosing S: the estimate is biased low and rises towards log p(x) as S grows. ``--check-samples`` also
evaluates with 4S (fresh noise) and says whether the estimate moved by more than twice the standard error
of the change; if it did, raise ``--samples``.
"""
import argparse
import csv
import os
import sys

import numpy as np

from . import data as datalib
from .checkpoint import CheckpointError, load_checkpoint
from .evaluation import evaluate_terms
from .files import atomic_file
from .fast.memory import keep_freed_memory
from .fast.threads import single_threaded_blas
from .cli import DefaultsFormatter, non_negative_int, parse_args, physical_memory, positive

positive_int = positive(int)
MAX_SAMPLES = 10**6  # beyond this, --samples is refused: S forward passes per batch would run for days
BYTES_PER_SAMPLE_AND_SEQUENCE = 8 * 8  # float64 values kept per (sample, sequence), with working copies
TERMS = ("elbo", "rec", "kl", "log_likelihood", "ess")


class EvaluateError(Exception):
    """A flag whose value cannot work; the message is one line naming the flag."""


def check_samples(samples, batch_size=None, memory=None):
    """Refuse an S whose per-sample values cannot fit in memory (or whose work cannot finish).

    `elbo_and_importance` keeps, for each of the S samples, an ELBO and a log-weight per sequence of the
    batch, then stacks them into (B, S) float64 arrays: about S * B * 8 bytes several times over. S above
    MAX_SAMPLES is refused outright; given the batch size B, S * B * BYTES_PER_SAMPLE_AND_SEQUENCE must also
    stay below half of ``memory`` (default: the physical memory).
    """
    if samples > MAX_SAMPLES:
        raise EvaluateError(f"--samples {samples}: more than {MAX_SAMPLES:,} importance samples per sequence "
                            f"(each is a forward pass over every batch) would not finish; use a smaller "
                            f"--samples (the default is 50)")
    if batch_size is None:
        return
    memory = physical_memory() if memory is None else memory
    need = samples * batch_size * BYTES_PER_SAMPLE_AND_SEQUENCE
    if memory and need > memory // 2:
        bound = max(1, (memory // 2) // (batch_size * BYTES_PER_SAMPLE_AND_SEQUENCE))
        raise EvaluateError(f"--samples {samples} with batches of {batch_size} sequences needs about "
                            f"{need / 2**30:.1f} GiB, more than half of the {memory / 2**30:.1f} GiB of memory; "
                            f"use --samples {bound} or fewer (or a smaller --batch-size)")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minivrnn.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsFormatter)
    p.add_argument("checkpoint", help="a .npz written by python -m minivrnn.train")
    p.add_argument("--samples", type=positive_int, default=50,
                   help=f"S, importance samples per sequence (at most {MAX_SAMPLES:,}, and as many as fit in "
                        f"half the memory)")
    p.add_argument("--split", choices=("test", "valid", "train"), default="test", help="which split")
    p.add_argument("--data", default=None, help="data source [default: the one the model was trained on]")
    p.add_argument("--batch-size", type=positive_int, default=32, help="sequences per forward pass")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seeds the importance samples")
    p.add_argument("--check-samples", action="store_true",
                   help="also evaluate with 4 x --samples and say whether the estimate moved (5x the time)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier CSV of the same settings (otherwise it is kept and this run stops)")
    return p


def main(argv=None):
    args = parse_args(build_parser(), argv)
    keep_freed_memory()
    try:
        with single_threaded_blas():
            return evaluate(args)
    except (CheckpointError, datalib.DataError, EvaluateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # writing the CSV beside the checkpoint: a read-only folder, a full disk, ...
        print(f"error: {e.filename or args.checkpoint}: cannot write the per-sequence values "
              f"({e.strerror or e})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def evaluate_checkpoint(checkpoint, *, split="test", samples=50, seed=0, batch_size=32, data=None):
    """Load ``checkpoint`` and its run's own splits (or ``data``), and evaluate every sequence of ``split``.

    Returns (config, {"steps", "elbo", "rec", "kl", "log_likelihood", "ess"}: one value per sequence, see
    `evaluation.evaluate_terms`). Raises CheckpointError, DataError or EvaluateError with a one-line message.
    """
    check_samples(samples)  # before any loading: an absurd S is refused at once
    config, params, seqs = load_for_evaluation(checkpoint, split, data)
    return config, evaluate_sequences(checkpoint, config, params, seqs, split=split, samples=samples, seed=seed,
                                      batch_size=batch_size)


def load_for_evaluation(checkpoint, split="test", data=None, ck=None):
    """(config, float64 parameters, the sequences of ``split``) of a checkpoint (``ck``: already loaded), on
    the run's own splits (or ``data``): its test split was never trained on."""
    ck = load_checkpoint(checkpoint) if ck is None else ck
    config, source = ck["config"], ck["train_state"].get("data", {})
    if data is None and "source" not in source:
        raise CheckpointError(f"{checkpoint}: train_state/data/source: missing, so the data it was "
                              f"trained on is unknown; name the data with --data")
    splits = datalib.load_splits(data or source["source"], frame_size=source.get("frame_size", 200),
                                 heldout=source.get("heldout", "utterance"), split_seed=source.get("seed", 0),
                                 dtype=np.float64)
    if splits.x_dim != config.x_dim:
        raise datalib.DataError(splits.source, f"frames have {splits.x_dim} dimensions but the checkpoint "
                                               f"expects x_dim = {config.x_dim}")
    if (splits.kind == "handwriting") != (config.output == "pen"):  # the pen output reads (dx, dy, pen_up)
        raise datalib.DataError(splits.source, f"is {splits.kind} data but the checkpoint {checkpoint} has "
                                               f"the {config.output_kind} output (pen strokes go with the pen "
                                               f"output, and only they)")
    params = {k: v.astype(np.float64) for k, v in ck["params"].items()}
    return config, params, getattr(splits, split)


def evaluate_sequences(checkpoint, config, params, seqs, *, split, samples, seed, batch_size):
    """Every sequence's values (see `evaluate_checkpoint`), in batches of similar lengths, S samples each."""
    check_samples(samples, max(1, min(batch_size, len(seqs))))  # the batches as they will be
    rng = np.random.default_rng(seed)
    values = {name: np.empty(len(seqs)) for name in TERMS}
    for indices, x, mask in datalib.batches_by_length(seqs, batch_size):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # (a non-finite value: refused below)
            terms = evaluate_terms(params, config, x, mask, samples, rng)
        for name, v in terms.items():
            values[name][indices] = v
    bad = [name for name in ("elbo", "log_likelihood") if not np.all(np.isfinite(values[name]))]
    if bad:  # finite parameters can still overflow a density (e.g. absurdly large weights)
        raise EvaluateError(f"{checkpoint}: the {' and the '.join(bad)} of some {split} sequences are not finite "
                            f"(NaN or Inf): the parameters give no usable density on this data")
    values["steps"] = np.array([len(s) for s in seqs])
    return values


def summarise(values):
    """Means per sequence and per step, and the standard error over the sequences of each, for the ELBO, its
    terms and the log-likelihood estimate. Per step is sum over sequences / total steps (each sequence weighs
    by its length); its standard error treats the sequences as drawn at random, lengths as given."""
    steps, n = values["steps"].astype(np.float64), len(values["steps"])
    out = {"sequences": n, "steps": int(steps.sum())}
    for name in ("elbo", "rec", "kl", "log_likelihood"):
        v = values[name]
        per_step = v.sum() / steps.sum()
        spread = np.std(v - per_step * steps, ddof=1) if n > 1 else np.nan
        out[name] = {"per_sequence": float(v.mean()), "per_step": float(per_step),
                     "se_per_sequence": float(np.std(v, ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
                     "se_per_step": float(spread * np.sqrt(n) / steps.sum())}
    ess = values["ess"]
    out["ess"] = {"median": float(np.median(ess)), "min": float(np.min(ess))}
    return out


def sample_check(values, more):
    """Did the estimate move from S to 4S samples? (per-step change, its standard error, moved?) The change is
    paired sequence by sequence, so the sequences' own spread cancels."""
    change = more["log_likelihood"] - values["log_likelihood"]
    steps = values["steps"].sum()
    n = len(change)
    per_step = change.sum() / steps
    se = np.std(change, ddof=1) * np.sqrt(n) / steps if n > 1 else np.nan
    return float(per_step), float(se), bool(abs(per_step) > 2 * se) if n > 1 else True


def csv_path(args, latent):
    """The CSV's name says what was measured, so that evaluations with other settings sit side by side (an
    RNN's exact log-likelihood depends on neither S nor the seed)."""
    data = "" if args.data is None else "-data-" + os.path.basename(os.path.normpath(args.data)).replace(".", "_")
    check = "+4S" if args.check_samples else ""
    settings = f"S{args.samples}{check}-seed{args.seed}" if latent else "exact"
    return os.path.splitext(args.checkpoint)[0] + f"-{args.split}-{settings}{data}.csv"


def evaluate(args):
    check_samples(args.samples)  # before any loading: an absurd S is refused at once
    ck = load_checkpoint(args.checkpoint)
    path = csv_path(args, ck["config"].latent)
    if os.path.exists(path) and not args.overwrite:  # checked before the work, not after it
        raise EvaluateError(f"{path}: an evaluation with these settings exists; pass --overwrite to replace it")
    config, params, seqs = load_for_evaluation(args.checkpoint, args.split, args.data, ck)
    settings = dict(split=args.split, batch_size=args.batch_size)
    values = evaluate_sequences(args.checkpoint, config, params, seqs, samples=args.samples, seed=args.seed,
                                **settings)
    more = None
    if args.check_samples and config.latent:  # 4S samples, with noise of their own
        check_samples(4 * args.samples)
        more = evaluate_sequences(args.checkpoint, config, params, seqs, samples=4 * args.samples,
                                  seed=args.seed + 1, **settings)
    columns = (["elbo", "rec", "kl", f"log_likelihood_is_{args.samples}", "ess"] if config.latent
               else ["log_likelihood_exact"])
    with atomic_file(path, suffix=".csv") as tmp:  # a failure leaves an earlier CSV as it was; names ``path``
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sequence", "steps", *columns]
                            + ([f"log_likelihood_is_{4 * args.samples}"] if more else []))
            for i in range(len(values["steps"])):
                row = ([values[k][i] for k in TERMS] if config.latent else [values["log_likelihood"][i]])
                row += [more["log_likelihood"][i]] if more else []
                writer.writerow([i, values["steps"][i], *(f"{v:.4f}" for v in row)])
    print(report(config, values, args, more))
    print(f"per-sequence values: {path}")
    return 0


def report(config, values, args, more=None):
    """The printed table: rows are the quantities, columns per sequence, per step and its standard error."""
    s = summarise(values)
    lines = [f"{config.model} on {s['sequences']} {args.split} sequences, {s['steps']} steps x_t (normalised "
             f"data; log-likelihoods in nats, higher is better)",
             f"  {'':46s} {'per sequence':>13s} {'per step':>10s} {'std. error':>11s}"]

    def row(label, name):
        v = s[name]
        lines.append(f"  {label:46s} {v['per_sequence']:13.3f} {v['per_step']:10.4f} {v['se_per_step']:11.4f}")

    if not config.latent:
        row("log-likelihood (exact, eq. 2)", "log_likelihood")
        return "\n".join(lines)
    row("ELBO (>=, eq. 10)", "elbo")
    row("  reconstruction, E_q log p(x_t | z_<=t, x_<t)", "rec")
    row("  KL(q || prior), subtracted", "kl")
    row(f"log-likelihood (~, importance-sampled, S={args.samples})", "log_likelihood")
    lines.append(f"  effective sample size of the S={args.samples} weights per sequence: median "
                 f"{s['ess']['median']:.1f}, smallest {s['ess']['min']:.1f}")
    if more is not None:
        change, se, moved = sample_check(values, more)
        verdict = ("it moved: raise --samples" if moved else
                   f"within the noise: S={args.samples} is enough for this model")
        lines.append(f"  with S={4 * args.samples}: {change:+.4f} nats per step (std. error {se:.4f}); {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
