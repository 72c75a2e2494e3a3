"""Regenerate the reference kit's golden vectors, minivrnn/reference_kit/golden/<case>.npz, from minivrnn in
float64 with fixed seeds (the format is documented in minivrnn/reference_kit/README.md).

    python scripts/make_golden_vectors.py

The values are minivrnn's; tests/test_reference_kit.py checks that the PyTorch twin (minivrnn/torch_twin.py,
autograd and torch.distributions) reproduces them, which is the independent reason to trust them.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np

from minivrnn import VRNNConfig, init_params
from minivrnn.model import backward, forward
from minivrnn.sampling import draw_noise, sample_with_noise

OUT = Path(__file__).resolve().parents[1] / "minivrnn" / "reference_kit" / "golden"
LENGTHS = [6, 4, 1]  # a ragged batch: T = 6, B = 3
SAMPLE_SHAPE = (5, 2)  # generated steps and sequences
SMALL = dict(z_dim=2, h_dim=4, feat_dim=5, sigma_min=0.01)
CASES = {  # file name: (config fields, seed)
    "vrnn-gauss": (dict(x_dim=3, model="vrnn-gauss", n_layers=2), 1),
    "vrnn-gmm": (dict(x_dim=2, model="vrnn-gmm", n_mix=3), 2),
    "vrnn-i-gauss": (dict(x_dim=3, model="vrnn-i-gauss"), 3),
    "rnn-gauss": (dict(x_dim=3, model="rnn-gauss"), 4),
    "rnn-gmm": (dict(x_dim=2, model="rnn-gmm", n_mix=2), 5),
    "vrnn-gauss-lstm": (dict(x_dim=3, model="vrnn-gauss", cell="lstm"), 6),
    "vrnn-gmm-pen": (dict(x_dim=3, model="vrnn-gmm", output="pen", n_mix=2), 7),
}


def make_case(fields, seed):
    """Every array of one golden file, keyed as in the README's table."""
    config = VRNNConfig(**SMALL, **fields)
    params = init_params(config, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    T, B = max(LENGTHS), len(LENGTHS)
    x = rng.normal(size=(T, B, config.x_dim))  # (T, B, D)
    if config.output_kind == "pen":
        x[..., 2] = rng.random((T, B)) < 0.3  # the pen-up bit
    mask = (np.arange(T)[:, None] < np.array(LENGTHS)[None, :]).astype(np.float64)  # (T, B)
    x[mask == 0] = 7.0  # junk on the padded steps, on purpose: it must not matter
    eps = rng.normal(size=(T, B, config.z_dim)) if config.latent else None  # (T, B, Z)
    result, cache = forward(params, config, x, mask, eps)
    grads = backward(cache)
    assert all(np.any(g != 0) for g in grads.values()), "a dead unit: pick another seed"
    noise = draw_noise(config, *SAMPLE_SHAPE, rng)
    arrays = {"config": np.array(json.dumps(dataclasses.asdict(config))), "x": x, "mask": mask,
              "loss": np.float64(result["loss"]), "nll": result["nll"], "kl": result["kl"],
              "sample": sample_with_noise(params, config, noise)}
    if eps is not None:
        arrays["eps"] = eps
    arrays.update({f"final_state/{k}": s for k, s in zip("hc", result["final_state"])})
    arrays.update({f"params/{k}": v for k, v in params.items()})
    arrays.update({f"grads/{k}": v for k, v in grads.items()})
    arrays.update({f"noise/{k}": v for k, v in noise.items()})
    return arrays


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (fields, seed) in CASES.items():
        path = OUT / f"{name}.npz"
        np.savez_compressed(path, **make_case(fields, seed))
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
