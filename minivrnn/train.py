"""Train a VRNN (or a baseline) from the command line: ``python -m minivrnn.train --tiny``.

One loop, top to bottom: for each epoch, for each batch: draw the noise eps, compute the negative ELBO and
its gradients (``loss_and_grads``), clip, take an Adam step; then evaluate the validation bound, log,
checkpoint, and stop early when it stops improving. A run's folder (``--out``) receives ``last.npz`` (the
checkpoint to resume from), ``best.npz`` (best validation bound), ``metrics.jsonl`` and PNG plots.
"""
import argparse
import errno
import fcntl
import glob
import json
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from operator import is_

import numpy as np
from tqdm import tqdm

from . import data as datalib
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .cli import DefaultsFormatter, non_empty, non_negative_int, parse_args, physical_memory, positive
from .files import atomic_file
from .model import MODELS, VRNNConfig, backward, forward, init_params
from .optim import Adam, clip_by_global_norm
from .fast.memory import keep_freed_memory
from .fast.threads import single_threaded_blas

# The newcomer's run validates with one noise draw (it never stops early: 15 epochs, patience 10); a real run
# averages several draws, because one draw on a small validation split moves the bound by more than an epoch
# of training does, and patience counts epochs of 3 optimizer steps on the shipped speech.
TINY = dict(data="handwriting", model="vrnn-gmm", z_dim=8, h_dim=32, feat_dim=32, epochs=15, batch_size=16,
            max_len=50, lr=3e-3, patience=10, valid_draws=1)
DEFAULTS = dict(data="speech", model="vrnn-gauss", z_dim=32, h_dim=128, feat_dim=128, epochs=100,
                batch_size=32, max_len=40, lr=1e-3, patience=30, valid_draws=5)


class TrainError(Exception):
    """A problem with the user's request (printed as one line, exit code 2)."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minivrnn.train", description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsFormatter)
    p.add_argument("--tiny", action="store_true",
                   help="the newcomer's run: a small VRNN on the shipped handwriting, done in seconds "
                        f"(sets {', '.join(f'{k}={v}' for k, v in TINY.items())} unless given)")
    p.add_argument("--data", help="speech | handwriting | series (shipped in data_samples/), or a path to a "
                                  ".npz in the documented layout or a folder of mono 16-bit .wav files "
                                  f"[default: {DEFAULTS['data']}]")
    p.add_argument("--model", choices=MODELS, help=f"the Table 1 variant [default: {DEFAULTS['model']}]")
    p.add_argument("--cell", choices=("gru", "lstm"), default="gru", help="the recurrence f")
    p.add_argument("--z-dim", type=positive(int), help=f"Z, latent size [default: {DEFAULTS['z_dim']}]")
    p.add_argument("--h-dim", type=positive(int), help=f"H, state size [default: {DEFAULTS['h_dim']}]")
    p.add_argument("--feat-dim", type=positive(int),
                   help=f"F, feature-extractor width [default: {DEFAULTS['feat_dim']}]")
    p.add_argument("--n-layers", type=positive(int), default=1, help="hidden layers per feature extractor")
    p.add_argument("--n-mix", type=positive(int), default=5, help="K, mixture components (GMM and pen outputs)")
    p.add_argument("--sigma-min", type=positive(float), default=1e-3, help="floor on every standard deviation")
    p.add_argument("--frame-size", type=positive(int), default=200, help="speech: samples per frame x_t")
    p.add_argument("--heldout", choices=datalib.HELDOUT, default="utterance",
                   help="what the validation and test splits hold out: whole utterances, or whole groups "
                        "(speakers of the speech, writers of the handwriting)")
    p.add_argument("--epochs", type=positive(int),
                   help=f"passes over the training split [default: {DEFAULTS['epochs']}]")
    p.add_argument("--batch-size", type=positive(int), help=f"sequences per step [default: {DEFAULTS['batch_size']}]")
    p.add_argument("--max-len", type=positive(int), help="crop training sequences to this many steps "
                                               f"[default: {DEFAULTS['max_len']}]")
    p.add_argument("--lr", type=positive(float), help=f"Adam step size [default: {DEFAULTS['lr']}]")
    p.add_argument("--clip", type=positive(float), default=10.0, help="clip the global gradient norm to this")
    p.add_argument("--kl-warmup", type=non_negative_int, default=0,
                   help="optimizer steps over which the KL weight rises linearly from 0 to 1 (0: off)")
    p.add_argument("--patience", type=positive(int),
                   help="stop after this many epochs without a better validation bound (the -ELBO per validation "
                        f"sequence, averaged over --valid-draws noise draws) [default: {DEFAULTS['patience']}]")
    p.add_argument("--valid-draws", type=positive(int),
                   help="noise draws the validation bound is averaged over; it picks best.npz and drives early "
                        f"stopping [default: {DEFAULTS['valid_draws']}]")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="training precision")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seeds the initialisation, shuffling and noise (not the split: see --split-seed)")
    p.add_argument("--split-seed", type=non_negative_int,
                   help="seeds which sequences go to the training, validation and test splits; keep it fixed "
                        "to compare runs of different --seed on the same test sequences [default: 0]")
    p.add_argument("--out", type=non_empty, default=None, help="run folder [default: runs/<data>-<model>]")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.npz, with the flags it was started with "
                        "(flags given again override them)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def resolve_args(args):
    """Fill unset options from --tiny or the defaults."""
    preset = TINY if args.tiny else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.split_seed is None:
        args.split_seed = 0
    if args.out is None:
        args.out = os.path.join("runs", f"{os.path.basename(str(args.data).rstrip('/'))}-{args.model}")
    return args


# Flags a run is started with, stored in its checkpoint so that ``--resume --out RUN`` continues it as it was
# (the model's sizes come from the checkpoint's config; --out and --resume are the resume request itself).
RUN_FLAGS = ("tiny", "data", "model", "cell", "z_dim", "h_dim", "feat_dim", "n_layers", "n_mix", "sigma_min",
             "frame_size", "heldout", "epochs", "batch_size", "max_len", "lr", "clip", "kl_warmup", "patience",
             "valid_draws", "dtype", "seed", "split_seed", "no_plots")


# Flags whose None means "not given": resolve_args fills them in (from --tiny's preset or the defaults).
FILLED_LATER = set(DEFAULTS) | {"split_seed", "out"}


def explicit_flags(argv):
    """The destinations of the options actually written in ``argv`` (not filled in by a default)."""
    p = build_parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def restore_run_flags(args, explicit):
    """For --resume: every run flag not given again takes the value stored in the run's last.npz."""
    out = args.out if args.out is not None else resolve_args(argparse.Namespace(**vars(args))).out
    path = os.path.join(out, "last.npz")
    state = load_checkpoint(path)["train_state"]
    stored = state.get("args", {})
    actions = {action.dest: action for action in build_parser()._actions}
    for key, value in stored.items():
        if key in RUN_FLAGS and key not in explicit:
            where = f"{path}: train_state/args/{key}"
            if value is None and actions[key].default is not None and key not in FILLED_LATER:
                raise TrainError(f"{where}: null, but this flag always has a value (its default is "
                                 f"{actions[key].default!r})")
            setattr(args, key, stored_flag(actions[key], value, where))
    if "split_seed" not in stored and "split_seed" not in explicit:  # a run started before --split-seed
        args.split_seed = state.get("data", {}).get("seed", args.seed)  # ... split its data with --seed
    args.out = out
    return args


def stored_flag(action, value, where):
    """A flag's value stored in a checkpoint, checked as the command line's would be (its type and choices):
    a hand-edited checkpoint must not carry a value the parser would have refused into the run."""
    if value is None:
        return None
    if action.nargs == 0:  # a switch (--tiny, --no-plots): true or false
        if not isinstance(value, bool):
            raise TrainError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(value, (bool, list, dict)):
        raise TrainError(f"{where}: expected a single value, got {value!r}")
    try:
        parsed = action.type(str(value)) if action.type is not None else value
    except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
        raise TrainError(f"{where}: {e}") from None
    if action.choices is not None and parsed not in action.choices:
        raise TrainError(f"{where}: expected one of {', '.join(map(str, action.choices))}, got {value!r}")
    return parsed


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(build_parser(), argv)
    try:
        if args.resume:
            args = restore_run_flags(args, explicit_flags(argv))
        args = resolve_args(args)
        keep_freed_memory()
        with single_threaded_blas():
            code = train(args)
    except (TrainError, datalib.DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the training loop (loading data), or a second Ctrl-C while saving
        print("\ninterrupted", file=sys.stderr)
        return 130
    return code


@contextmanager
def interrupt_deferred():
    """Hold a Ctrl-C (SIGINT) until the block ends, so an optimizer step and its bookkeeping are applied
    whole or not at all: the checkpoint saved on Ctrl-C is then exactly a state the run passes through."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # not ours to change (another handler, or SIGINT ignored)
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def train(args):
    """Run the training loop described by ``args``; returns the exit code."""
    with ExitStack() as held:  # the run folder's lock, released however the run ends
        return run_training(args, held)


def run_training(args, held):
    """The body of ``train``: ``held`` receives the run folder's lock once the folder exists."""
    dtype = np.dtype(args.dtype)
    splits = datalib.load_splits(args.data, frame_size=args.frame_size, heldout=args.heldout,
                                 split_seed=args.split_seed)
    to_dtype = lambda seqs: [s.astype(dtype) for s in seqs]
    train_seqs, valid_seqs = to_dtype(splits.train), to_dtype(splits.valid)
    output = "pen" if splits.kind == "handwriting" else "auto"
    checkpoint_path = os.path.join(args.out, "last.npz")
    if args.resume:
        ck = load_checkpoint(checkpoint_path)
        config, params = ck["config"], {k: v.astype(dtype) for k, v in ck["params"].items()}
        if config.x_dim != splits.x_dim:
            raise TrainError(f"{args.data}: frames have {splits.x_dim} dimensions but the checkpoint "
                             f"{checkpoint_path} expects x_dim = {config.x_dim}")
        missing = [k for k in ("epoch", "batch", "step", "best", "bad_epochs", "history")
                   if k not in ck["train_state"]]
        if "adam/step" not in ck["optimizer_arrays"] or missing:
            raise TrainError(f"{checkpoint_path}: holds no training state to resume from "
                             f"(missing {', '.join(missing) or 'the optimizer state'})")
        opt = Adam(lr=args.lr)
        opt.load_state_arrays(ck["optimizer_arrays"])
        for kind, moments in (("m", opt.m), ("v", opt.v)):
            for name, moment in moments.items():
                if name in params and moment.shape != params[name].shape:
                    raise TrainError(f"{checkpoint_path}: Adam's moment adam/{kind}/{name} has shape "
                                     f"{moment.shape}, the parameter {params[name].shape}")
        state = ck["train_state"]
        stored_split = state.get("data", {}).get("seed", args.split_seed)
        if stored_split != args.split_seed:  # the test split would change under the run
            raise TrainError(f"--split-seed {args.split_seed}: the run in {args.out} was started with split seed "
                             f"{stored_split}; resume it without --split-seed (or start a new run)")
    else:
        try:
            config = VRNNConfig(x_dim=splits.x_dim, z_dim=args.z_dim, h_dim=args.h_dim, feat_dim=args.feat_dim,
                                n_layers=args.n_layers, model=args.model, n_mix=args.n_mix,
                                sigma_min=args.sigma_min, cell=args.cell, output=output)
        except ValueError as e:
            raise TrainError(e) from None
        check_model_fits(config, dtype)
        params = init_params(config, args.seed, dtype)
        opt = Adam(lr=args.lr)
        state = {"epoch": 0, "batch": 0, "step": 0, "best": None, "bad_epochs": 0, "history": [],
                 "data": {"source": str(args.data), "frame_size": args.frame_size, "seed": args.split_seed,
                          "heldout": args.heldout}}
    state["args"] = {k: getattr(args, k) for k in RUN_FLAGS}
    make_run_folder(args.out)
    held.enter_context(run_folder_lock(args.out))
    remove_stale_temp_files(args.out)
    data_arrays = splits.to_arrays()  # normalisation statistics, kind, frame size
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    if args.resume:
        with writing(args.out, f"cannot rewrite {os.path.basename(metrics_path)}"):
            restore_metrics(metrics_path, state["history"])
    last_finite = LastFinite(params, opt)

    def save(path=checkpoint_path, params=params, optimizer_arrays=None):
        """Atomic (checkpoint.py): a failed write leaves the file that was there, and an OSError (a full disk,
        a read-only folder) ends the run with one line naming --out."""
        with writing(args.out, f"cannot write {os.path.basename(path)}"):
            save_checkpoint(path, params, config, optimizer_arrays=optimizer_arrays or opt.state_arrays(),
                            train_state=state, data_arrays=data_arrays)

    def stop_diverged(problem, where):
        """Divergence: save the last state whose parameters and Adam moments were all finite, and say so."""
        if bar is not None:
            bar.close()
        if not last_finite.finite:  # the state this run started from (a resumed checkpoint) was not finite:
            print(f"error: {problem} {where}; stopped, {checkpoint_path} left as it was", file=sys.stderr)
            return 3  # ... and is still on disk as it was read: writing it back would save its NaN again
        with interrupt_deferred():
            save(params=last_finite.params(), optimizer_arrays=last_finite.optimizer_arrays())
        print(f"error: {problem} {where}; stopped with the last finite parameters (step "
              f"{last_finite.step}) in {checkpoint_path} (try a smaller --lr or --clip)", file=sys.stderr)
        return 3

    print(f"minivrnn: {config.model} ({config.cell}) on {args.data}: {len(train_seqs)} training and "
          f"{len(valid_seqs)} validation sequences, x_dim={config.x_dim}, "
          f"{sum(p.size for p in params.values()):,} parameters -> {args.out}")
    print(f"each epoch's line: the -ELBO in nats (lower is better; evaluate prints the ELBO, its negative) per "
          f"time step x_t, for training and validation alike, then per training chunk (at most {args.max_len} "
          f"steps) and per whole validation sequence; validation averages {args.valid_draws} noise "
          f"draw{'s' if args.valid_draws > 1 else ''}")
    if state["step"] == 0:
        print("(the first steps compile the Numba kernels, or load them from the cache)")
    t_start = time.time()
    kl_per_step = None  # from the last validation pass (None if this call ran no epoch)
    bar = None
    try:
        while state["epoch"] < args.epochs and state["bad_epochs"] < args.patience:  # (a resumed run may be done)
            epoch = state["epoch"]
            batches = list(datalib.iterate_batches(train_seqs, args.batch_size, np.random.default_rng(
                [args.seed, epoch]), max_len=args.max_len))
            bar = tqdm(total=len(batches), initial=state["batch"], desc=f"epoch {epoch + 1}/{args.epochs}",
                       leave=True, dynamic_ncols=True, disable=not on_terminal(sys.stderr))
            sums = state.setdefault("sums", [0.0, 0.0, 0.0, 0, 0])  # -ELBO, KL, rec, sequences, steps
            for b in range(state["batch"], len(batches)):
                x, mask = batches[b]
                noise = np.random.default_rng([args.seed, epoch, b, 1])
                eps = noise.standard_normal(x.shape[:2] + (config.z_dim,)).astype(dtype)
                kl_weight = 1.0 if args.kl_warmup <= 0 else min(1.0, (state["step"] + 1) / args.kl_warmup)
                where = f"at step {state['step']} (epoch {epoch + 1})"
                # (np.errstate: an overflow shows up as the NaN/Inf the checks below report in one line,
                # not as a RuntimeWarning on the way)
                try:
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        result, cache = forward(params, config, x, mask, eps, kl_weight=kl_weight)
                    bad = None if np.isfinite(result["loss"]) else f"the loss became {result['loss']}"
                    if bad is None:
                        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                            grads, norm = clip_by_global_norm(backward(cache), args.clip)
                        bad = None if np.isfinite(norm) else f"the gradient norm became {norm}"
                except ValueError as e:
                    # The inputs are checked (data loader) and the parameters finite (checked after every
                    # update), so what fails here is a value check inside the model (e.g. a standard deviation
                    # that overflowed to NaN): the run has diverged, like a NaN loss.
                    bad = f"the forward pass failed ({e})"
                if bad is not None:  # nothing has been applied: the parameters are still the last finite ones
                    return stop_diverged(bad, where)
                with interrupt_deferred():  # the step and its bookkeeping, whole or not at all
                    opt.update(params, grads)
                    bad = last_finite.check(params, opt)
                    if bad is None:  # (else: the update overflowed, or Adam's moments were already bad)
                        n_seq = x.shape[1]
                        kl, nll = float(result["kl"].sum()) / n_seq, float(result["nll"].sum()) / n_seq
                        sums[0] += (nll + kl) * n_seq
                        sums[1] += kl * n_seq
                        sums[2] += nll * n_seq
                        sums[3] += n_seq
                        sums[4] += float(mask.sum())
                        state["step"] += 1
                        state["batch"] = b + 1
                if bad is not None:  # the training state was not advanced: it matches the last finite state
                    return stop_diverged(bad, where)
                bar.set_postfix(loss=f"{nll + kl:.2f}", kl=f"{kl:.2f}", rec=f"{nll:.2f}")
                bar.update(1)
            bar.close()
            bar = None
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # (as in the step)
                    valid_loss, valid_per_step, kl_per_step = evaluate_bound(
                        params, config, valid_seqs, args.batch_size, args.seed, args.valid_draws)
                bad = None if np.isfinite(valid_loss) else f"the validation loss became {valid_loss}"
            except ValueError as e:  # as in the training step: a value check inside the model failed
                bad = f"the validation forward pass failed ({e})"
            if bad is not None:  # the epoch is not recorded: a resume redoes its validation
                return stop_diverged(bad, f"after epoch {epoch + 1}")
            with interrupt_deferred():  # the epoch's record, state and checkpoints, whole or not at all
                record = {"epoch": epoch + 1, "step": state["step"], "train_loss": sums[0] / max(sums[3], 1),
                          "train_kl": sums[1] / max(sums[3], 1), "train_rec": sums[2] / max(sums[3], 1),
                          "valid_loss": valid_loss, "train_per_step": sums[0] / max(sums[4], 1),
                          "valid_per_step": valid_per_step, "seconds": round(time.time() - t_start, 2)}
                state["history"].append(record)
                state.update(epoch=epoch + 1, batch=0, sums=[0.0, 0.0, 0.0, 0, 0])
                if state["best"] is None or valid_loss < state["best"]:
                    state["best"], state["bad_epochs"] = valid_loss, 0
                    save(os.path.join(args.out, "best.npz"))
                else:
                    state["bad_epochs"] += 1
                save()
                # The line after the checkpoint that records its epoch: killed before the line, the resume
                # writes it from the checkpoint's history (restore_metrics); killed before the checkpoint, the
                # resume redoes the epoch and no line was written for it, so no epoch is ever listed twice.
                with writing(args.out, f"cannot append to {os.path.basename(metrics_path)}"):
                    append_line(metrics_path, json.dumps(record) + "\n")
                print(epoch_summary(record))
            if state["bad_epochs"] >= args.patience:
                print(f"early stop: no better validation bound for {args.patience} epochs")
                break
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()  # before the message, so that it is the last line
        if last_finite.finite:  # (else no step was taken: last.npz is still the checkpoint this run resumed)
            with interrupt_deferred():  # the last finite state: a Ctrl-C may land just after a diverged update
                save(params=last_finite.params(), optimizer_arrays=last_finite.optimizer_arrays())
        print(f"\ninterrupted: saved {checkpoint_path}; continue with --resume --out {args.out}",
              file=sys.stderr)
        return 130
    if not args.no_plots:
        if kl_per_step is None:  # e.g. --resume of a run that had already reached --epochs
            kl_per_step = evaluate_bound(params, config, valid_seqs, args.batch_size, args.seed,
                                         args.valid_draws)[2]
        write_plots(args, params, config, splits, valid_seqs, state["history"], kl_per_step)
    print(f"done in {time.time() - t_start:.1f} s: {args.out}/ holds last.npz, best.npz, metrics.jsonl"
          + ("" if args.no_plots else " and the plots"))
    return 0


def parameter_count_bound(config):
    """An upper bound on the number of parameters ``init_params(config)`` builds (every MLP and head counted
    for every model), computed without building them: sizes too large to allocate are refused first."""
    D, Z, H, F, K, L = (config.x_dim, config.z_dim, config.h_dim, config.feat_dim, config.n_mix,
                        config.n_layers)
    mlp = lambda n_in: n_in * F + F + (L - 1) * (F * F + F)  # first layer, then L - 1 square ones
    heads = 2 * (F + 1) * Z * 2 + (F + 1) * (2 * D * K + K + 6 * K + 1 + 2 * D)  # prior, enc; every output
    cell = 4 * H * (2 * F + H + 2)  # the LSTM's four gates (the GRU has three)
    return mlp(D) + mlp(Z) + mlp(H) + 2 * mlp(F + H) + heads + cell


# Copies of the parameters a training holds: the parameters, their gradients, Adam's two moments, the
# last finite state (two buffers of three rows), and working room.
COPIES_IN_TRAINING = 12


def gib(n_bytes):
    """A byte count in GiB, readable however large (sizes typed by a user can have hundreds of digits)."""
    n = n_bytes // 2**30
    return f"{n:,}" if n < 10**12 else f"10^{len(str(n)) - 1}"


def check_model_fits(config, dtype, memory=None):
    """Refuse, in one line naming the size flags, a model whose training would need more than half of the
    memory: its parameters would be allocated (and fail, or swap) before the first step."""
    memory = physical_memory() if memory is None else memory
    need = parameter_count_bound(config) * COPIES_IN_TRAINING * np.dtype(dtype).itemsize
    if memory and need > memory // 2:
        raise TrainError(f"--h-dim {config.h_dim}, --z-dim {config.z_dim}, --feat-dim {config.feat_dim}, "
                         f"--n-mix {config.n_mix}, --n-layers {config.n_layers}: a model of that size needs "
                         f"about {gib(need)} GiB to train, more than half of the "
                         f"{memory / 2**30:.1f} GiB of memory; choose smaller sizes")


@contextmanager
def writing(out, what):
    """Turn an operating-system error while writing into the run folder (a full disk, a read-only place, a
    path under a file, ...) into the one-line TrainError ``--out OUT: <what>: <the system's reason>``."""
    try:
        yield
    except OSError as e:
        raise TrainError(f"--out {out}: {what}: {e.strerror or e}") from None


def make_run_folder(out):
    if os.path.exists(out) and not os.path.isdir(out):
        raise TrainError(f"--out {out}: cannot create the run folder: a file of that name exists (not a folder)")
    with writing(out, "cannot create the run folder"):
        os.makedirs(out, exist_ok=True)


def append_line(path, line):
    """Append one line; if the write fails (a full disk), cut the file back to where it was, so that a partial
    line never follows the complete ones (the file keeps every line it had)."""
    with open(path, "a") as f:
        start = f.tell()
        try:
            f.write(line)
            f.flush()
        except OSError:
            try:
                f.truncate(start)
            except OSError:
                pass
            raise


LOCK_NAME = ".lock"
# save_checkpoint's temporary files (files.atomic_file(prefix=".checkpoint-", suffix=".npz") in checkpoint.py):
# a training killed while writing one leaves it behind.
CHECKPOINT_TEMP_PATTERN = ".checkpoint-*.npz"
# ... and the plots' (plots._save), sample.wav's (write_plots) and the rewritten metrics' (restore_metrics)
PLOT_TEMP_PATTERNS = (".plot-*.png", ".plot-*.wav", ".metrics-*.jsonl")


@contextmanager
def run_folder_lock(out):
    """Hold an exclusive lock on ``out``/.lock while the block runs, or raise TrainError naming the training
    that holds it. flock, not a file created with O_EXCL: the kernel releases the lock when its holder's file
    is closed, however the process ends (kill -9 included), so a lock can never be left stale. The file stays
    in the folder: unlinking it would let a later training lock a new file while an older one still holds
    the unlinked one."""
    path = os.path.join(out, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise TrainError(f"--out {out}: cannot create the lock file {LOCK_NAME}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise TrainError(f"--out {out}: cannot lock {LOCK_NAME}: {e.strerror or e}") from None
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            except OSError:
                holder = ""
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise TrainError(f"--out {out}: another training{who} is writing to this folder") from None
        # the holder's pid, for the message above (the lock itself is the flock, not this content)
        with writing(out, f"cannot write the lock file {LOCK_NAME}"):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale_temp_files(out):
    """Delete the temporary checkpoint and plot files a killed training left in ``out``. Called with the folder's lock
    held, so no other training can be writing one of them now."""
    paths = [path for pattern in (CHECKPOINT_TEMP_PATTERN, *PLOT_TEMP_PATTERNS)
             for path in glob.glob(os.path.join(glob.escape(out), pattern))]
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise TrainError(f"--out {out}: cannot remove the stale temporary file {os.path.basename(path)}: "
                             f"{e.strerror or e}") from None


def restore_metrics(metrics_path, history):
    """For --resume: make metrics.jsonl list exactly the epochs the checkpoint recorded (its history). A
    training killed after its checkpoint but before the epoch's line (or in the middle of writing the line)
    left the file one epoch short; it is rewritten (atomically) from the history in that case."""
    lines = [json.dumps(record) + "\n" for record in history]
    try:
        with open(metrics_path) as f:
            if f.read() == "".join(lines):
                return
    except FileNotFoundError:
        pass
    with atomic_file(metrics_path, prefix=".metrics-", suffix=".jsonl") as tmp:
        with open(tmp, "w") as f:
            f.writelines(lines)


class LastFinite:
    """The parameters and Adam's moments as of the last update after which all of them were finite: what a
    diverged run saves. ``check`` copies them (flat, into one of two buffers used in turn) and tests the copy
    with one isfinite reduction; the other buffer keeps the previous finite state. The copy is the price of
    giving back the parameters from before an update that overflowed: Adam updates them in place."""

    def __init__(self, params, opt):
        self.names = tuple(params)
        self.shapes = [params[k].shape for k in self.names]
        self.views = [params[k].reshape(-1) for k in self.names]  # Adam updates the arrays in place
        size = sum(v.size for v in self.views)
        dtype = self.views[0].dtype  # train casts every parameter to --dtype
        self.buffers = [np.empty((3, size), dtype), np.empty((3, size), dtype)]  # rows: params, m, v
        self.current = 0
        self.step = opt.step
        self.moments = bool(opt.m)  # a fresh Adam has none until its first update
        self._flat = {}  # row: (Adam's moment arrays, their flat views), rebuilt when Adam replaces them
        self._copy(params, opt, self.buffers[0])
        self.finite = bool(np.isfinite(self.buffers[0]).all())  # (after a check, always)

    def _copy(self, params, opt, buffer):
        np.concatenate(self.views, out=buffer[0])
        if opt.m:
            for row, moments in ((1, opt.m), (2, opt.v)):
                arrays = tuple(map(moments.get, self.names))
                flat = self._flat.get(row)
                if flat is None or not all(map(is_, arrays, flat[0])):  # Adam keeps its arrays after step 1
                    # (a moment missing from a resumed checkpoint is zero, as Adam starts it)
                    flat = self._flat[row] = (arrays, [np.zeros(v.size, v.dtype) if a is None else a.reshape(-1)
                                                       for a, v in zip(arrays, self.views)])
                np.concatenate(flat[1], out=buffer[row])
        else:
            buffer[1:] = 0

    def check(self, params, opt):
        """After an update: None if the parameters and moments are all finite (they become the last finite
        state), else what is not finite."""
        buffer = self.buffers[1 - self.current]
        self._copy(params, opt, buffer)
        if np.isfinite(buffer).all():
            self.current, self.step, self.moments, self.finite = 1 - self.current, opt.step, bool(opt.m), True
            return None
        bad = [name for name, row in zip(("the parameters", "Adam's m", "Adam's v"), buffer)
               if not np.isfinite(row).all()]
        before = self.buffers[self.current]
        if not np.isfinite(before[1:]).all():
            return (f"Adam's moments held NaN or Inf before the update (a resumed checkpoint's adam/m or "
                    f"adam/v?), so the update made {' and '.join(bad)} non-finite")
        return f"the update made {' and '.join(bad)} non-finite"

    def _arrays(self, row):
        flat, out, i0 = self.buffers[self.current][row], {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = int(np.prod(shape))
            out[name] = flat[i0:i0 + size].reshape(shape).copy()
            i0 += size
        return out

    def params(self):
        return self._arrays(0)

    def optimizer_arrays(self):
        """As Adam.state_arrays() gives them, for the last finite state."""
        arrays = {"adam/step": np.array(self.step)}
        if self.moments:
            arrays.update({f"adam/m/{k}": v for k, v in self._arrays(1).items()})
            arrays.update({f"adam/v/{k}": v for k, v in self._arrays(2).items()})
        return arrays


def epoch_summary(record):
    """The epoch's line. The two per-step figures compare like with like; the per-sequence ones do not: a training
    sequence is a chunk of at most --max-len steps, a validation sequence is whole (often much longer)."""
    return (f"  epoch {record['epoch']}: -ELBO per time step: train {record['train_per_step']:.3f}, "
            f"validation {record['valid_per_step']:.3f}  |  per training chunk {record['train_loss']:.3f} "
            f"(KL {record['train_kl']:.3f}, rec {record['train_rec']:.3f}), per validation sequence "
            f"{record['valid_loss']:.3f}")


def evaluate_bound(params, config, seqs, batch_size, seed, draws=1):
    """Validation -ELBO per sequence and per time step, and the mean KL at each time step, each averaged over
    ``draws`` noise draws. The draws are the same at every epoch (seeded by ``seed``), so two epochs' bounds
    differ by what training changed, not by the noise."""
    rng = np.random.default_rng([seed, 12345])
    dtype = params["phi_x.l0.W"].dtype
    longest = max(len(s) for s in seqs)
    n_draws = draws if config.latent else 1  # (an RNN's bound is exact: no noise to average)
    total, kl_sum, kl_count = 0.0, np.zeros(longest), np.zeros(longest)
    for _, x, mask in datalib.batches_by_length(seqs, batch_size):  # (T, B, D), (T, B)
        for _ in range(n_draws):
            eps = rng.standard_normal(x.shape[:2] + (config.z_dim,)).astype(dtype)
            result, _ = forward(params, config, x, mask, eps)
            total += result["loss"] * x.shape[1]
            kl_sum[:x.shape[0]] += result["kl"].sum(axis=1)
            kl_count[:x.shape[0]] += mask.sum(axis=1)
    return total / (n_draws * len(seqs)), total / kl_count.sum(), kl_sum / np.maximum(kl_count, 1)


def on_terminal(stream):
    """Progress bars on a terminal; in a log file (or a pipe) only the plain line per epoch."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def write_plots(args, params, config, splits, valid_seqs, history, kl_per_step):
    from . import plots
    from .sampling import sample

    T = min(args.max_len, max(len(s) for s in valid_seqs))
    generated = sample(params, config, T, 3, np.random.default_rng(args.seed))
    denorm = splits.normalizer.denormalize
    real = [denorm(s[:T].astype(np.float64)) for s in valid_seqs[:3]]
    fake = [denorm(generated[:, i].astype(np.float64)) for i in range(3)]
    with writing(args.out, "cannot write training_curve.png"):
        plots.plot_training_curve(history, os.path.join(args.out, "training_curve.png"))
    if config.latent:
        with writing(args.out, "cannot write kl_per_step.png"):
            plots.plot_kl_per_step(kl_per_step, os.path.join(args.out, "kl_per_step.png"))
    with writing(args.out, "cannot write samples.png"):
        plots.plot_samples(real, fake, splits.kind, os.path.join(args.out, "samples.png"))
    if splits.kind == "speech":  # listen to it: frames back to a 16 kHz waveform
        with writing(args.out, "cannot write sample.wav"):
            with atomic_file(os.path.join(args.out, "sample.wav"), prefix=".plot-", suffix=".wav") as tmp:
                datalib.write_wav(tmp, np.clip(datalib.frames_to_waveform(fake[0]), -1, 1), splits.sample_rate)


if __name__ == "__main__":
    sys.exit(main())
