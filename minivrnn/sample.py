"""Generate sequences from a trained model: ``python -m minivrnn.sample CHECKPOINT``.

Draws from the prior (eqs. 4-6), undoes the data normalisation stored in the checkpoint, and writes a
``.npy`` of shape (T, B, D) plus a PNG of the samples (and, for speech, ``.wav`` files at 16 kHz).
"""
import argparse
import os
import sys

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint
from .files import atomic_file, naming
from .fast.memory import keep_freed_memory
from .sampling import sample
from .cli import DefaultsFormatter, non_negative_int, parse_args, physical_memory, positive

MEMORY_FRACTION = 0.5  # refuse a generation whose arrays would need more than this share of physical memory


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minivrnn.sample", description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsFormatter)
    p.add_argument("checkpoint", help="a .npz written by python -m minivrnn.train (e.g. runs/.../best.npz)")
    p.add_argument("--steps", type=positive(int), default=100, help="time steps T to generate")
    p.add_argument("--n", type=positive(int), default=4, help="sequences to generate")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seeds the draws")
    p.add_argument("--out", default=None, help="output folder [default: the checkpoint's folder]")
    return p


def generation_bytes(config, n_steps, n_sequences):
    """A generous estimate of the memory a generation needs: per step and sequence, float64 values for the
    noise (z and the decoder's draws), the samples and the copies denormalising makes (about 6 per dimension)."""
    return n_steps * n_sequences * (6 * config.x_dim + config.z_dim + 4) * 8


def main(argv=None):
    args = parse_args(build_parser(), argv)
    try:
        ck = load_checkpoint(args.checkpoint)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    config, params = ck["config"], ck["params"]
    need, memory = generation_bytes(config, args.steps, args.n), physical_memory()
    if memory is not None and need > MEMORY_FRACTION * memory:
        print(f"error: --n {args.n} --steps {args.steps}: generating {args.n} x {args.steps} frames of "
              f"x_dim = {config.x_dim} needs about {need / 2**30:,.1f} GiB, more than {MEMORY_FRACTION:.0%} of "
              f"this machine's {memory / 2**30:,.1f} GiB; ask for fewer sequences or steps", file=sys.stderr)
        return 2
    keep_freed_memory()
    from .data import Normalizer

    normalizer = Normalizer.from_arrays(ck["data_arrays"]) if ck["data_arrays"] else None
    # (np.errstate: values too large for the arithmetic become the NaN or Inf refused below, in one line,
    # rather than RuntimeWarnings on the way)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xs = sample(params, config, args.steps, args.n, np.random.default_rng(args.seed))  # (T, B, D)
        bad = None
        if not np.isfinite(xs).all():
            bad = "the model generated NaN or Inf (parameters too large to compute with)"
        elif normalizer is not None:
            xs = normalizer.denormalize(xs)
            if not np.isfinite(xs).all():
                bad = "the samples overflow once data/mean and data/std are applied"
    if bad is not None:  # a finite but absurd checkpoint (hand-edited or damaged): nothing is written
        print(f"error: {args.checkpoint}: {bad}; nothing written", file=sys.stderr)
        return 2
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    try:
        wrote = write_outputs(out, xs, ck["data_arrays"])
    except OSError as e:  # the output folder: a path under a file, read-only, a full disk, ...
        print(f"error: {e.filename or out}: cannot write the samples ({e.strerror or e})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every output already in place is complete; no temporary file is left behind
        print("\ninterrupted", file=sys.stderr)
        return 130
        return 2
    print(f"wrote {', '.join(wrote)}; samples.npy holds (T, B, D) = {tuple(xs.shape)}")
    return 0


def write_outputs(out, xs, data_arrays):
    """samples.npy, generated.png and (speech) one .wav per sequence in ``out``; returns the paths written.

    Each file is written atomically (`atomic_file`): a failure (a full disk, ...) leaves an earlier file of
    that name as it was, and raises an OSError naming the file and giving the system's reason."""
    with naming(out):
        os.makedirs(out, exist_ok=True)
    npy = os.path.join(out, "samples.npy")
    with atomic_file(npy, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            # through Python's own file writes, so that a full disk reports the system's reason (ENOSPC);
            # np.save on a real file uses ndarray.tofile, whose error says only "N requested and M written"
            np.lib.format.write_array(_Writer(f), np.asarray(xs), allow_pickle=False)
    kind = str(data_arrays.get("kind", "series"))
    from .plots import plot_samples

    png = os.path.join(out, "generated.png")
    with naming(png):
        plot_samples(None, [xs[:, i] for i in range(xs.shape[1])], kind, png)  # atomic already (plots._save)
    wrote = [npy, png]
    if kind == "speech":  # frames back to 16 kHz waveforms
        from .data import frames_to_waveform, write_wav

        rate = int(data_arrays.get("sample_rate", 16000)) or 16000
        for i in range(xs.shape[1]):
            wav = os.path.join(out, f"sample-{i}.wav")
            with atomic_file(wav, suffix=".wav") as tmp:
                write_wav(tmp, np.clip(frames_to_waveform(xs[:, i]), -1, 1), rate)
            wrote.append(wav)
    return wrote


class _Writer:
    """A file seen only through ``write``: numpy then writes an array in chunks with ``write`` (not tofile)."""

    def __init__(self, f):
        self.write = f.write


if __name__ == "__main__":
    sys.exit(main())
