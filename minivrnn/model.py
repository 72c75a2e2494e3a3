"""The VRNN and its baselines (the paper's Table 1 rows): configuration, parameters, and the training step.

A training step is ``loss_and_grads``: the forward pass (the negative ELBO, eq. (10) of docs/equations.md) and
its hand-written backprop through time. Two engines compute it, to the same float64 rounding:

- ``engine="readable"``: minivrnn/readable.py, the one to read. A loop over t calls each component's forward
  function (minivrnn/ops/) and keeps the step's cache; a loop over reversed t calls their backward functions in
  mirror order and carries dh_next. Start there to learn how the VRNN and backprop through time work.
- ``engine="compiled"`` (the default, used for training): minivrnn/fast/engine.py, the same maths over all
  T*B rows at once with the sequential chain in compiled loops. A reader can skip it.
"""

from dataclasses import dataclass

import numpy as np

from . import readable
from .fast import engine as compiled
from .ops import heads
from .ops.gru import init_gru
from .ops.linear import init_mlp
from .ops.lstm import init_lstm
from .validate import check_arrays

ENGINES = {"compiled": compiled, "readable": readable}  # this module's docstring says which is which

MODELS = ("vrnn-gauss", "vrnn-gmm", "vrnn-i-gauss", "rnn-gauss", "rnn-gmm")


@dataclass(frozen=True)
class VRNNConfig:
    x_dim: int  # D: size of one frame x_t
    z_dim: int = 16  # Z: size of the latent z_t (unused by the RNN baselines)
    h_dim: int = 64  # H: size of the recurrent state h_t
    feat_dim: int = 64  # F: width of every hidden layer of every feature extractor
    n_layers: int = 1  # hidden (ReLU) layers in each of phi_x, phi_z, prior, enc, dec
    model: str = "vrnn-gauss"  # one of MODELS (the paper's Table 1 rows)
    n_mix: int = 1  # K: mixture components of a GMM or pen output
    sigma_min: float = 1e-3  # floor added to every standard deviation: softplus(a) + sigma_min
    cell: str = "gru"  # the recurrence f: "gru" (PyTorch GRUCell) or "lstm" (PyTorch LSTMCell)
    output: str = "auto"  # "auto" follows `model` (gauss or gmm); "pen" for (dx, dy, pen_up) strokes

    def __post_init__(self):
        # Real integers only: a bool, a float such as 32.5 or a string such as "32" (a hand-edited checkpoint's
        # config) would otherwise pass int(x) >= 1 and fail later, far from the cause.
        for name in ("x_dim", "z_dim", "h_dim", "feat_dim", "n_layers", "n_mix"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        sigma_min = self.sigma_min
        if (isinstance(sigma_min, (bool, np.bool_)) or not isinstance(sigma_min, (int, float, np.integer, np.floating))
                or not (np.isfinite(sigma_min) and sigma_min > 0)):
            raise ValueError(f"sigma_min: expected a finite positive float, got {sigma_min!r}")
        for name, allowed in (("model", MODELS), ("cell", ("gru", "lstm")), ("output", ("auto", "pen"))):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
        if self.output == "pen" and self.x_dim != 3:
            raise ValueError(f"x_dim: the pen output needs x_dim = 3 (dx, dy, pen_up), got {self.x_dim}")

    @property
    def latent(self):
        """True for the VRNN variants, which have z_t."""
        return self.model.startswith("vrnn")

    @property
    def learned_prior(self):
        """True when the prior is phi^prior(h_{t-1}) (eq. 4), False for VRNN-I's N(0, I)."""
        return self.model in ("vrnn-gauss", "vrnn-gmm")

    @property
    def output_kind(self):
        """"gauss", "gmm" or "pen"."""
        if self.output == "pen":
            return "pen"
        return "gmm" if self.model.endswith("gmm") else "gauss"

    @property
    def n_state(self):
        """Arrays in the recurrent state: (h,) for the GRU, (h, c) for the LSTM."""
        return 1 if self.cell == "gru" else 2


def init_params(config, seed=0, dtype=np.float64):
    """All parameters, named as in the public contract (README, "Public contract"), seeded from ``seed``."""
    rng = np.random.default_rng(seed)
    D, Z, H, F, K = config.x_dim, config.z_dim, config.h_dim, config.feat_dim, config.n_mix
    widths = [F] * config.n_layers
    params = {}

    def add_mlp(name, n_in):
        params.update({f"{name}.{k}": v for k, v in init_mlp(rng, n_in, widths, dtype).items()})

    add_mlp("phi_x", D)
    if config.latent:
        add_mlp("phi_z", Z)
        if config.learned_prior:
            add_mlp("prior", H)
            params.update(heads.init_heads(rng, "prior", F, {"mu": Z, "sigma": Z}, dtype))
        add_mlp("enc", F + H)
        params.update(heads.init_heads(rng, "enc", F, {"mu": Z, "sigma": Z}, dtype))
        add_mlp("dec", F + H)
        cell_in = 2 * F
    else:
        add_mlp("dec", H)
        cell_in = F
    out = {head: width(D, K) for head, width in heads.OUTPUT_HEADS[config.output_kind].items()}
    params.update(heads.init_heads(rng, "dec", F, out, dtype))
    init_cell = init_gru if config.cell == "gru" else init_lstm
    params.update({f"{config.cell}.{k}": v for k, v in init_cell(rng, cell_in, H, dtype).items()})
    return params


def initial_state(config, batch_size, dtype=np.float64):
    """h_0 = 0 (and c_0 = 0 for the LSTM): a tuple of (B, H) arrays."""
    return tuple(np.zeros((batch_size, config.h_dim), dtype=dtype) for _ in range(config.n_state))


def loss_and_grads(params, config, x, mask, eps, *, state0=None, kl_weight=1.0, engine="compiled"):
    """The negative ELBO (eq. 10; eq. 2's negative log-likelihood for the RNN baselines) and its gradients.

    x (T, B, D), mask (T, B) of 0/1, eps (T, B, Z) (None for the RNN baselines). The loss is summed over time
    and data dimensions and averaged over the B sequences. ``state0`` carries the state between chunks for
    truncated BPTT; ``kl_weight`` scales the KL term (KL warm-up); ``engine`` is "compiled" or "readable"
    (this module's docstring). Returns (loss, grads).
    """
    result, cache = forward(params, config, x, mask, eps, state0=state0, kl_weight=kl_weight, engine=engine)
    return result["loss"], backward(cache)


def forward(params, config, x, mask, eps, *, state0=None, kl_weight=1.0, engine="compiled"):
    """The training step's forward pass. Returns (result, cache); result holds the loss, the per-step
    reconstruction ``nll`` and ``kl`` (T, B) (zeros on padded steps), the ``final_state`` and, for the VRNNs,
    the two Gaussians of every step (``q_mu``, ``q_sigma``, ``p_mu``, ``p_sigma``, (T, B, Z)) for importance
    sampling (evaluation.py)."""
    module = get_engine(engine)
    T, B = _check_inputs(params, config, x, mask, eps, state0)
    state0 = initial_state(config, B, x.dtype) if state0 is None else tuple(state0)
    result, cache = module.forward(params, config, x, mask, eps, state0, kl_weight)
    return result, (module, cache)


def backward(cache):
    """Backprop through time for ``forward`` (by the same engine): the gradients, keyed like ``params``."""
    module, cache = cache
    return module.backward(cache)


def get_engine(engine):
    """The module of the engine named ``engine`` (ENGINES), or a ValueError naming the choices."""
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    return ENGINES[engine]


def _check_inputs(params, config, x, mask, eps, state0):
    specs = {"x": (x, f"T B {config.x_dim}"), "mask": (mask, "T B")}
    if config.latent:
        if eps is None:
            raise ValueError(f"eps: expected shape (T, B, {config.z_dim}) for {config.model}, got None")
        specs["eps"] = (eps, f"T B {config.z_dim}")
    for i, s in enumerate(state0 or ()):
        specs[f"state0[{i}]"] = (s, f"B {config.h_dim}")
    sizes = check_arrays(**specs)
    if sizes["T"] == 0 or sizes["B"] == 0:
        raise ValueError(f"x: expected at least one time step and one sequence, got shape {x.shape} (T, B, D)")
    if params["phi_x.l0.W"].dtype != x.dtype:
        raise ValueError(f"x: expected dtype {params['phi_x.l0.W'].dtype} (the parameters' dtype), got {x.dtype}")
    if state0 is not None and len(state0) != config.n_state:
        raise ValueError(f"state0: expected {config.n_state} arrays for cell={config.cell!r}, got {len(state0)}")
    return sizes["T"], sizes["B"]
