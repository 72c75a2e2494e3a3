"""Evaluate a checkpoint on held-out data: ``python -m minivrnn.evaluate CHECKPOINT``.

Prints the paper's two columns, averaged over the test sequences: the ELBO (">=", eq. 10) and the
importance-sampled log-likelihood estimate with S samples ("~"), in nats per sequence; writes one line per
sequence to a CSV beside the checkpoint.
"""
import argparse
import csv
import os
import sys

import numpy as np

from . import data as datalib
from .checkpoint import CheckpointError, load_checkpoint
from .evaluation import elbo_and_importance
from .files import atomic_file
from .fast.memory import keep_freed_memory
from .fast.threads import single_threaded_blas
from .cli import DefaultsFormatter, non_negative_int, physical_memory, positive

positive_int = positive(int)
MAX_SAMPLES = 10**6  # beyond this, --samples is refused: S forward passes per batch would run for days
BYTES_PER_SAMPLE_AND_SEQUENCE = 8 * 8  # float64 values kept per (sample, sequence), with working copies


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
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
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


def evaluate(args):
    check_samples(args.samples)  # before any loading: an absurd S is refused at once
    ck = load_checkpoint(args.checkpoint)
    config, source = ck["config"], ck["train_state"].get("data", {})
    if args.data is None and "source" not in source:
        raise CheckpointError(f"{args.checkpoint}: train_state/data/source: missing, so the data it was "
                              f"trained on is unknown; name the data with --data")
    splits = datalib.load_splits(args.data or source["source"], frame_size=source.get("frame_size", 200),
                                 heldout=source.get("heldout", "utterance"), seed=source.get("seed", 0),
                                 dtype=np.float64)  # the run's own splits: its test split was never trained on
    if splits.x_dim != config.x_dim:
        raise datalib.DataError(splits.source, f"frames have {splits.x_dim} dimensions but the checkpoint "
                                               f"expects x_dim = {config.x_dim}")
    if (splits.kind == "handwriting") != (config.output == "pen"):  # the pen output reads (dx, dy, pen_up)
        raise datalib.DataError(splits.source, f"is {splits.kind} data but the checkpoint {args.checkpoint} has "
                                               f"the {config.output_kind} output (pen strokes go with the pen "
                                               f"output, and only they)")
    seqs = getattr(splits, args.split)
    check_samples(args.samples, max(1, min(args.batch_size, len(seqs))))  # the batches as they will be
    params = {k: v.astype(np.float64) for k, v in ck["params"].items()}
    rng = np.random.default_rng(args.seed)
    elbos, estimates = [], []
    for start in range(0, len(seqs), args.batch_size):
        x, mask = datalib.pad_batch(seqs[start:start + args.batch_size])
        elbo, estimate = elbo_and_importance(params, config, x, mask, args.samples, rng)
        elbos.extend(elbo)
        estimates.extend(estimate)
    path = os.path.splitext(args.checkpoint)[0] + f"-{args.split}-eval.csv"
    with atomic_file(path, suffix=".csv") as tmp:  # a failure leaves an earlier CSV as it was; names ``path``
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["sequence", "steps", "elbo", f"log_likelihood_is_{args.samples}"])
            for i, (s, e, l) in enumerate(zip(seqs, elbos, estimates)):
                writer.writerow([i, len(s), f"{e:.4f}", f"{l:.4f}"])
    print(f"{config.model} on {len(seqs)} {args.split} sequences (normalised data, nats per sequence):")
    print(f"  ELBO (>=)                  {np.mean(elbos):12.3f}")
    print(f"  importance-sampled (~, S={args.samples}) {np.mean(estimates):10.3f}")
    print(f"per-sequence values: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
