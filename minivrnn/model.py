"""The VRNN and its baselines (the paper's Table 1 rows): configuration, parameters, and the training
step's forward pass and hand-written backprop through time.

VRNN (eqs. 4-10), per time step t, with h_{t-1} the state before the step:
    phi_x(x_t)                                   every frame, all rows at once
    [mu_z, sigma_z] = enc(phi_x(x_t), h_{t-1})   eq. (8)   ┐
    z_t = mu_z + sigma_z * eps_t                 reparam.  │ the only sequential chain:
    h_t = f(phi_x(x_t), phi_z(z_t), h_{t-1})     eq. (6)   ┘ a loop over t
    [mu_0, sigma_0] = prior(h_{t-1})             eq. (4)   all rows at once, after the loop
    p(x_t | z_t, h_{t-1}) from dec(phi_z(z_t), h_{t-1})   eq. (5)   all rows at once
    loss = -sum_t [ log p(x_t | ...) - KL(q || p) ] / B   the negative of eq. (10)
RNN baselines (eqs. 1-2): h_t = f(phi_x(x_t), h_{t-1}); p(x_t | x_<t) from dec(h_{t-1}).
"""
from dataclasses import dataclass

import numpy as np

from . import heads
from ._validate import check_arrays
from .chain import chain_backward, chain_forward
from .ops import gru, lstm
from .ops.gru import gru_sequence_backward, gru_sequence_forward, init_gru
from .ops.kl import kl_gaussian_backward, kl_gaussian_forward
from .ops.linear import init_mlp, mlp_backward, mlp_forward
from .ops.lstm import init_lstm, lstm_sequence_backward, lstm_sequence_forward
from .ops.recurrent import gate_param_specs
from .params import add_prefixed, sub

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
        if self.model not in MODELS:
            raise ValueError(f"model: expected one of {', '.join(MODELS)}, got {self.model!r}")
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell: expected 'gru' or 'lstm', got {self.cell!r}")
        if self.output not in ("auto", "pen"):
            raise ValueError(f"output: expected 'auto' or 'pen', got {self.output!r}")
        if self.output == "pen" and self.x_dim != 3:
            raise ValueError(f"x_dim: the pen output needs x_dim = 3 (dx, dy, pen_up), got {self.x_dim}")
        for name in ("x_dim", "z_dim", "h_dim", "feat_dim", "n_layers", "n_mix"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not self.sigma_min > 0:
            raise ValueError(f"sigma_min: expected > 0, got {self.sigma_min}")

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
    """All parameters, named as in the public contract (design.md), seeded from ``seed``."""
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


def loss_and_grads(params, config, x, mask, eps, *, state0=None, kl_weight=1.0):
    """The negative ELBO (eq. 10; eq. 2's negative log-likelihood for the RNN baselines) and its gradients.

    x (T, B, D), mask (T, B) of 0/1, eps (T, B, Z) (None for the RNN baselines). The loss is summed over time
    and data dimensions and averaged over the B sequences. ``state0`` carries the state between chunks for
    truncated BPTT; ``kl_weight`` scales the KL term (KL warm-up). Returns (loss, grads).
    """
    result, cache = forward(params, config, x, mask, eps, state0=state0, kl_weight=kl_weight)
    return result["loss"], backward(cache)


def forward(params, config, x, mask, eps, *, state0=None, kl_weight=1.0):
    """The training step's forward pass. Returns (result, cache); result holds the loss, the per-step
    reconstruction ``nll`` and ``kl`` (T, B) (zeros on padded steps) and the ``final_state``."""
    T, B = _check_inputs(params, config, x, mask, eps, state0)
    state0 = initial_state(config, B, x.dtype) if state0 is None else tuple(state0)
    px, px_cache = mlp_forward(sub(params, "phi_x."), x)  # (T, B, F), every frame at once
    if config.latent:
        chain, loop = chain_forward(params, config, px, mask, eps, state0)  # the sequential part, compiled
        h_prevs, q_mu, q_sigma, state = chain["h_prevs"], chain["q_mu"], chain["q_sigma"], chain["final_state"]
        dec_in = np.concatenate([chain["pz"], h_prevs], axis=2)  # (T, B, F + H): dec sees [phi_z(z_t), h_{t-1}]
        prior, p_mu, p_sigma = _prior_forward(params, config, h_prevs)
        kl, kl_cache = kl_gaussian_forward(q_mu, q_sigma, p_mu, p_sigma)  # (T, B)
    else:
        h_prevs, state, loop = _rnn_recurrence_forward(params, config, px, mask, state0)
        dec_in, prior, kl, kl_cache = h_prevs, None, np.zeros_like(mask), None
    hd, dec_cache = mlp_forward(sub(params, "dec."), dec_in.reshape(T * B, -1))  # (T*B, F)
    kind = config.output_kind
    out, out_cache = heads.output_params_forward(params, kind, hd, config.x_dim, config.n_mix, config.sigma_min)
    logp, logp_cache = heads.output_logpdf_forward(out, kind, x.reshape(T * B, -1))
    logp = logp.reshape(T, B)
    nll, kl = -logp * mask, kl * mask
    loss = (nll.sum() + kl_weight * kl.sum()) / B
    result = {"loss": float(loss), "nll": nll, "kl": kl, "final_state": state}
    if config.latent:  # the two Gaussians of each step, for importance sampling (evaluation.py)
        result.update(q_mu=q_mu, q_sigma=q_sigma, p_mu=p_mu, p_sigma=p_sigma)
    cache = dict(config=config, T=T, B=B, mask=mask, kl_weight=kl_weight, px_cache=px_cache, loop=loop,
                 prior=prior, kl_cache=kl_cache, dec_cache=dec_cache, out_cache=out_cache,
                 logp_cache=logp_cache)
    return result, cache


def backward(cache):
    """Backprop through time for ``forward``: the gradients of the loss, keyed like ``params``."""
    config, T, B, mask = cache["config"], cache["T"], cache["B"], cache["mask"]
    grads = {}
    dlogp = (-mask / B).reshape(T * B)  # d loss / d log p(x_t)
    dout = heads.output_logpdf_backward(dlogp, config.output_kind, cache["logp_cache"])
    dhd, g = heads.output_params_backward(dout, cache["out_cache"])
    add_prefixed(grads, "", g)
    ddec_in, g = mlp_backward(dhd, cache["dec_cache"])
    add_prefixed(grads, "dec.", g)
    if config.latent:
        F = config.feat_dim
        ddec_in = ddec_in.reshape(T, B, -1)
        dpz, dh_prevs = ddec_in[..., :F], ddec_in[..., F:]  # dec saw [phi_z(z_t), h_{t-1}]
        dkl = cache["kl_weight"] * mask / B
        dq_mu, dq_sigma, dp_mu, dp_sigma = kl_gaussian_backward(dkl, cache["kl_cache"])
        dh_prevs = dh_prevs + _prior_backward(dp_mu, dp_sigma, cache["prior"], grads)
        dpx, g = chain_backward(cache["loop"], dpz, dh_prevs, dq_mu, dq_sigma)
    else:
        dh_prevs = ddec_in.reshape(T, B, -1)  # dec saw h_{t-1}
        dpx, g = _rnn_recurrence_backward(config, cache["loop"], dh_prevs)
    add_prefixed(grads, "", g)
    _, g = mlp_backward(dpx, cache["px_cache"], input_grad=False)  # x is data: no gradient needed
    add_prefixed(grads, "phi_x.", g)
    return grads


# --- the recurrence f (eqs. 1 and 6) -------------------------------------------------------------------

def _cell_forward(params, config, x, state, packed=None):
    """One step of the recurrence for either cell (generation uses it); returns (new_state, cache). A loop over
    steps passes ``packed = _packed_cell(params, config)``, made once, so that the gates are not packed again
    at every step."""
    packed = _packed_cell(params, config) if packed is None else packed
    if config.cell == "gru":
        h, cache = gru.packed_cell_forward(packed, x, state[0])
        return (h,), cache
    (h, c), cache = lstm.packed_cell_forward(packed, x, state[0], state[1])
    return (h, c), cache


def _packed_cell(params, config):
    """The cell's gates side by side (gru.pack or lstm.pack), its parameters' shapes checked."""
    module = gru if config.cell == "gru" else lstm
    cell = sub(params, f"{config.cell}.")
    check_arrays(**gate_param_specs(cell, module.GATES))
    return module.pack(cell)


def _rnn_recurrence_forward(params, config, px, mask, state0):
    """RNN baselines, eq. (1): h_t = f(phi_x(x_t), h_{t-1}) over the whole sequence (a compiled loop).
    Returns (h_prevs (T, B, H), final_state, cache), h_prevs[t] being the state before step t."""
    if config.cell == "gru":
        hs, cache = gru_sequence_forward(sub(params, "gru."), px, state0[0], mask)
        final = (hs[-1],)
    else:
        (hs, cs), cache = lstm_sequence_forward(sub(params, "lstm."), px, state0[0], state0[1], mask)
        final = (hs[-1], cs[-1])
    h_prevs = np.concatenate([state0[0][None], hs[:-1]])  # (T, B, H)
    return h_prevs, final, cache


def _rnn_recurrence_backward(config, cache, dh_prevs):
    """Backward of _rnn_recurrence_forward given d h_{t-1} of every step: returns (dpx, grads)."""
    dhs = np.zeros_like(dh_prevs)
    dhs[:-1] = dh_prevs[1:]  # h_prevs[t + 1] is hs[t]; h_prevs[0] is the initial state
    if config.cell == "gru":
        dpx, _, g = gru_sequence_backward(dhs, cache)
    else:
        dpx, _, _, g = lstm_sequence_backward((dhs, np.zeros_like(dhs)), cache)
    return dpx, add_prefixed({}, f"{config.cell}.", g)


# --- VRNN, eqs. (4)-(10): the prior (the encoder -> z -> phi_z -> f chain is in chain.py) --------------

def _prior_forward(params, config, h_prevs):
    """[mu_0, sigma_0] = phi^prior(h_{t-1}) (eq. 4), or N(0, I) for VRNN-I."""
    T, B, _ = h_prevs.shape
    if not config.learned_prior:
        zeros = np.zeros((T, B, config.z_dim), dtype=h_prevs.dtype)
        return None, zeros, zeros + 1
    hp, mlp_cache = mlp_forward(sub(params, "prior."), h_prevs)
    (mu, sigma), head_cache = heads.gaussian_head_forward(params, "prior", hp, config.sigma_min)
    return (mlp_cache, head_cache), mu, sigma


def _prior_backward(dmu, dsigma, prior, grads):
    """Adds the prior's parameter gradients into ``grads``; returns d h_{t-1} (T, B, H), or 0 for VRNN-I."""
    if prior is None:
        return 0
    mlp_cache, head_cache = prior
    dhp, g = heads.gaussian_head_backward(dmu, dsigma, head_cache)
    add_prefixed(grads, "", g)
    dh, g = mlp_backward(dhp, mlp_cache)
    add_prefixed(grads, "prior.", g)
    return dh


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
