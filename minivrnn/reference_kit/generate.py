"""How the golden vectors (reference_kit/golden/<case>.npz) are made, from minivrnn in float64 with fixed seeds.

    python -m minivrnn.reference_kit.generate [--out DIR]

Each case is computed twice, by minivrnn's readable engine (minivrnn/readable.py) and by its compiled engine
(minivrnn/fast/), which share no code beyond the parameter layout; the two must agree before anything is
written, and the readable engine's values are the ones stored. tests/test_reference_kit.py also checks that
the PyTorch twin (minivrnn/torch_twin.py: autograd and torch.distributions) reproduces every file, which is
the independent reason to trust them. The format is documented in reference_kit/README.md.

Every case shares one ragged mask with holes (``MASK``): the contract says a padded step adds nothing and
leaves the state unchanged, and only a padded step *inside* a sequence lets the loss itself show a state that
moved (at the end of a sequence nothing reads the state afterwards). The two ``*-edges`` cases put the model
where implementations usually cut corners: standard-deviation pre-activations beyond +-20 (softplus's
large-argument branches; PyTorch's ``F.softplus`` switches to the identity above 20), frames far from every
mixture component (a log-sum-exp without the max shift underflows to log 0) and correlation pre-activations
beyond the +-8 clip, with frames drawn from the clipped components so that the clip decides the value.
"""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from ..model import VRNNConfig, backward, forward, init_params
from ..sampling import draw_noise, sample_with_noise

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

# The ragged batch of every case, T = 6 steps, B = 3 sequences (1 = a real step, 0 = padding):
# sequence 0 has a hole at step 2 and runs to the end; sequence 1 has a hole at step 1 and ends after step 3;
# sequence 2 is one step long (a parameter that only later steps reach gets no gradient from it alone).
MASK = np.array([[1, 1, 1],
                 [1, 0, 0],
                 [0, 1, 0],
                 [1, 1, 0],
                 [1, 0, 0],
                 [1, 0, 0]], dtype=np.float64)  # (T, B)
JUNK = 7.0  # every padded entry of x holds this, on purpose: it must not matter
SAMPLE_SHAPE = (5, 2)  # generated steps and sequences
SMALL = dict(z_dim=2, h_dim=4, feat_dim=5, sigma_min=0.01)
EDGE = 25.0  # a standard deviation's pre-activation beyond softplus's large-argument threshold (20 in PyTorch)
NEAR = 0.3  # the pen-edges frames: draws from a clipped component, shrunk towards its mean (see _pen_edges)
FAR = 40.0  # a frame this far from every component is thousands of nats below them (exp underflows to 0)


def _gmm_edges(config, params, x, rng):
    """softplus at +-EDGE in the encoder, the prior and one decoder component; one real frame FAR away."""
    params["enc.sigma.b"][:] = [EDGE, -EDGE]
    params["prior.sigma.b"][:] = [EDGE, 0.0]  # q and p wide on the same dimension: the KL stays moderate
    D = config.x_dim
    params["dec.sigma.b"][D:2 * D] = -EDGE  # component 1 (the heads are laid out (K, D) row-major)
    x[1, 0] = [FAR, -FAR]


def _pen_edges(config, params, x, rng):
    """Component 0's correlation pre-activation is above +8, component 1's below -8 (both clipped) and neither
    depends on the input (their weights are zero), so the real frames can be drawn from those very components:
    there 1 - rho^2 = 1 - tanh(8)^2 sets the log-density. Component 2 keeps its weights and sits at EDGE.

    The draws are shrunk towards the mean (NEAR): N2's u^2 + v^2 - 2 rho u v cancels to ~(1 - rho^2) (u^2 + v^2)
    near the line u = v, so its rounding error, magnified by 1 / (1 - rho^2), grows with u^2 + v^2; close to the
    mean two correct implementations agree well inside the default rtol."""
    mu, sigma, rho = params["dec.mu.b"], params["dec.sigma.b"], params["dec.rho.b"]
    for k, a in [(0, 9.5), (1, -10.0)]:
        cols = slice(2 * k, 2 * k + 2)  # component k's (dx, dy) in the (K, 2) row-major heads
        for head in ("mu", "sigma"):
            params[f"dec.{head}.W"][:, cols] = 0.0
        params["dec.rho.W"][:, k] = 0.0
        rho[k] = a
    sigma[4:6] = EDGE
    params["enc.sigma.b"][:] = [-EDGE, 1.0]
    r = np.tanh(np.clip(rho[:2], -8.0, 8.0))  # the clipped correlations of components 0 and 1
    s = np.logaddexp(0.0, sigma[:4]).reshape(2, 2) + config.sigma_min  # (K=2, 2) their standard deviations
    m = mu[:4].reshape(2, 2)
    T, B = MASK.shape
    for t in range(T):
        for b in range(B):
            k = (t + b) % 3
            if MASK[t, b] and k < 2:  # a draw from component k: its Cholesky factor times two normals
                n1, n2 = NEAR * rng.normal(size=2)
                x[t, b, :2] = m[k] + s[k] * [n1, r[k] * n1 + np.sqrt((1 - r[k]) * (1 + r[k])) * n2]


# file name: (config fields, seed, what the case changes in the parameters and x, or None)
CASES = {
    "vrnn-gauss": (dict(x_dim=3, model="vrnn-gauss", n_layers=2), 1, None),
    "vrnn-gmm": (dict(x_dim=2, model="vrnn-gmm", n_mix=3), 2, None),
    "vrnn-i-gauss": (dict(x_dim=3, model="vrnn-i-gauss"), 3, None),
    "rnn-gauss": (dict(x_dim=3, model="rnn-gauss"), 4, None),
    "rnn-gmm": (dict(x_dim=2, model="rnn-gmm", n_mix=2), 5, None),
    "vrnn-gauss-lstm": (dict(x_dim=3, model="vrnn-gauss", cell="lstm"), 6, None),
    "vrnn-gmm-pen": (dict(x_dim=3, model="vrnn-gmm", output="pen", n_mix=2), 7, None),
    "vrnn-gmm-edges": (dict(x_dim=2, model="vrnn-gmm", n_mix=3), 8, _gmm_edges),
    "vrnn-gmm-pen-edges": (dict(x_dim=3, model="vrnn-gmm", output="pen", n_mix=3), 9, _pen_edges),
}


def make_case(name, engine="readable"):
    """Every array of one golden file, keyed as in the README's table, computed by ``engine``."""
    fields, seed, edges = CASES[name]
    config = VRNNConfig(**SMALL, **fields)
    params = init_params(config, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    T, B = MASK.shape
    x = rng.normal(size=(T, B, config.x_dim))  # (T, B, D)
    if config.output_kind == "pen":
        x[..., 2] = rng.random((T, B)) < 0.3  # the pen-up bit
    if edges is not None:
        edges(config, params, x, rng)
    x[MASK == 0] = JUNK
    eps = rng.normal(size=(T, B, config.z_dim)) if config.latent else None  # (T, B, Z)
    result, cache = forward(params, config, x, MASK, eps, engine=engine)
    grads = backward(cache)
    noise = draw_noise(config, *SAMPLE_SHAPE, rng)
    arrays = {"config": np.array(json.dumps(dataclasses.asdict(config))), "x": x, "mask": MASK.copy(),
              "loss": np.float64(result["loss"]), "nll": result["nll"], "kl": result["kl"],
              "sample": sample_with_noise(params, config, noise, engine=engine)}
    if eps is not None:
        arrays["eps"] = eps
    arrays.update({f"final_state/{k}": s for k, s in zip("hc", result["final_state"])})
    arrays.update({f"params/{k}": v for k, v in params.items()})
    arrays.update({f"grads/{k}": v for k, v in grads.items()})
    arrays.update({f"noise/{k}": v for k, v in noise.items()})
    return arrays


def engines_disagree(a, b, rtol=1e-10):
    """The keys on which two ``make_case`` results differ by more than rounding (relative to each array's
    largest value): the two engines sum in different orders, so they agree to rounding, not bit for bit."""
    off = []
    for k in a:
        if k == "config":
            off += [] if a[k] == b[k] else [k]
            continue
        scale = max(np.abs(a[k]).max(initial=0), 1e-300)
        if a[k].shape != b[k].shape or not np.abs(a[k] - b[k]).max(initial=0) <= rtol * scale:
            off.append(k)
    return off


def write_case(name, out_dir):
    """Computes ``name`` with both engines, checks they agree, writes ``out_dir/<name>.npz``; returns its path."""
    readable, compiled = make_case(name, "readable"), make_case(name, "compiled")
    off = engines_disagree(readable, compiled)
    if off:
        raise RuntimeError(f"{name}: the readable and compiled engines disagree on {off}")
    dead = [k for k, v in readable.items() if k.startswith("grads/") and not np.any(v != 0)]
    if dead:  # a gradient that is 0 everywhere would check nothing
        raise RuntimeError(f"{name}: {dead} are 0 everywhere; pick another seed")
    path = Path(out_dir) / f"{name}.npz"
    np.savez_compressed(path, **readable)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minivrnn.reference_kit.generate",
                                description="Regenerate the reference kit's golden vectors.")
    p.add_argument("--out", default=str(GOLDEN_DIR), help="the folder to write <case>.npz into")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        print(f"error: --out {args.out}: not a folder", file=sys.stderr)
        return 2
    for name in CASES:
        path = write_case(name, out)
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
