"""Generate sequences from a trained model: ``python -m minivrnn.sample CHECKPOINT``.

Draws from the prior (eqs. 4-6), undoes the data normalisation stored in the checkpoint, and writes a
``.npy`` of shape (T, B, D) plus a PNG of the samples (and, for speech, ``.wav`` files at 16 kHz).
"""
import argparse
import os
import sys

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint
from .fast.memory import keep_freed_memory
from .sampling import sample
from .cli import DefaultsFormatter


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minivrnn.sample", description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsFormatter)
    p.add_argument("checkpoint", help="a .npz written by python -m minivrnn.train (e.g. runs/.../best.npz)")
    p.add_argument("--steps", type=int, default=100, help="time steps T to generate")
    p.add_argument("--n", type=int, default=4, help="sequences to generate")
    p.add_argument("--seed", type=int, default=0, help="seeds the draws")
    p.add_argument("--out", default=None, help="output folder [default: the checkpoint's folder]")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.n < 1:
        print("error: --steps and --n must be positive", file=sys.stderr)
        return 2
    try:
        ck = load_checkpoint(args.checkpoint)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    config, params = ck["config"], ck["params"]
    keep_freed_memory()
    xs = sample(params, config, args.steps, args.n, np.random.default_rng(args.seed))  # (T, B, D)
    from .data import Normalizer

    normalizer = Normalizer.from_arrays(ck["data_arrays"]) if ck["data_arrays"] else None
    if normalizer is not None:
        xs = normalizer.denormalize(xs)
    out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
    os.makedirs(out, exist_ok=True)
    npy = os.path.join(out, "samples.npy")
    np.save(npy, xs)
    kind = str(ck["data_arrays"].get("kind", "series"))
    from .plots import plot_samples

    png = os.path.join(out, "generated.png")
    plot_samples(None, [xs[:, i] for i in range(xs.shape[1])], kind, png)
    wrote = [npy, png]
    if kind == "speech":  # frames back to 16 kHz waveforms
        from .data import frames_to_waveform, write_wav

        rate = int(ck["data_arrays"].get("sample_rate", 16000)) or 16000
        for i in range(xs.shape[1]):
            wrote.append(os.path.join(out, f"sample-{i}.wav"))
            write_wav(wrote[-1], np.clip(frames_to_waveform(xs[:, i]), -1, 1), rate)
    print(f"wrote {', '.join(wrote)}; samples.npy holds (T, B, D) = {tuple(xs.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
