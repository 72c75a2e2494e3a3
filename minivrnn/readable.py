"""The readable VRNN: one training step, forward and backprop through time, one time step at a time.

This is the file to read to learn how a VRNN trains. It is built only from the components in minivrnn/ops/
(plain NumPy, one file each), in the style of CS231n's ``rnn_step_forward`` / ``rnn_step_backward``:

- ``forward`` runs ``vrnn_step_forward`` for t = 0, 1, ..., T-1. Each step calls the components' forward
  functions in the order of the paper's equations and keeps what their backward functions need in a cache.
- ``backward`` runs ``vrnn_step_backward`` for t = T-1, ..., 0. Each step calls the same components' backward
  functions in the mirror order, and carries ``dstate`` = d loss / d h_t (and d c_t for the LSTM) back to
  the step before: h_{t-1} reaches the loss through this step and through every later one.

The equations are in docs/equations.md. The RNN baselines (eqs. 1-2) have the same shape with fewer parts:
``rnn_step_forward`` / ``rnn_step_backward``.

Training uses the compiled engine (minivrnn/fast/engine.py), which computes the same numbers in another order
(everything but the recurrence over all T*B rows at once). ``loss_and_grads(..., engine="readable")`` runs this
one instead, and tests/test_engines.py holds the two equal to float64 rounding for every model variant.
"""
import numpy as np

from .ops import heads
from .ops.gru import gru_cell_backward, gru_cell_forward
from .ops.kl import kl_gaussian_backward, kl_gaussian_forward
from .ops.linear import mlp_backward, mlp_forward
from .ops.lstm import lstm_cell_backward, lstm_cell_forward
from .ops.reparam import reparam_backward, reparam_forward
from .params import add_prefixed, sub


def forward(params, config, x, mask, eps, state0, kl_weight):
    """The training step's forward pass over x (T, B, D) with mask (T, B) and eps (T, B, Z) (None for the RNN
    baselines), from ``state0`` (a tuple of (B, H) arrays); inputs already checked (model.forward).

    Returns (result, cache) as model.forward documents them: the loss is
        sum over t and sequences of [ -log p(x_t | ...) + kl_weight * KL_t ] / B,   the negative of eq. (10)
    with padded steps (mask 0) contributing nothing.
    """
    T, B = mask.shape
    nll, kl = np.zeros((T, B), x.dtype), np.zeros((T, B), x.dtype)  # (T, B)
    gaussians = {name: [] for name in ("q_mu", "q_sigma", "p_mu", "p_sigma")}  # each step's (B, Z), VRNN only
    state, steps = state0, []
    for t in range(T):
        if config.latent:
            state, out, step = vrnn_step_forward(params, config, x[t], mask[t], eps[t], state)
            for name in gaussians:
                gaussians[name].append(out[name])
        else:
            state, out, step = rnn_step_forward(params, config, x[t], mask[t], state)
        nll[t], kl[t] = out["nll"], out["kl"]
        steps.append(step)
    loss = (nll.sum() + kl_weight * kl.sum()) / B
    result = {"loss": float(loss), "nll": nll, "kl": kl, "final_state": state}
    if config.latent:
        result.update({name: np.stack(arrays) for name, arrays in gaussians.items()})  # (T, B, Z) each
    return result, {"config": config, "B": B, "kl_weight": kl_weight, "steps": steps}


def backward(cache):
    """Backprop through time for ``forward``: the gradients of the loss, keyed like ``params``."""
    config, B, steps = cache["config"], cache["B"], cache["steps"]
    grads = {}
    dstate = tuple(np.zeros_like(s) for s in steps[-1]["state"])  # d loss / d state_T: nothing reads state_T
    for step in reversed(steps):
        m = step["mask"]  # (B,)
        dnll = np.full_like(m, 1 / B)  # d loss / d nll_t of each sequence (the step applies the mask)
        dkl = np.full_like(m, cache["kl_weight"] / B)  # d loss / d kl_t
        if config.latent:
            dstate, step_grads = vrnn_step_backward(dnll, dkl, dstate, step)
        else:
            dstate, step_grads = rnn_step_backward(dnll, dstate, step)
        add_prefixed(grads, "", step_grads)  # every step uses the same weights: their gradients add up
    return grads


# --- the VRNN, one time step (eqs. 4-10) ----------------------------------------------------------------

def vrnn_step_forward(params, config, x_t, m_t, eps_t, state):
    """One step of the VRNN: x_t (B, D), m_t (B,) of 0/1, eps_t (B, Z), state = (h_{t-1},) or (h_{t-1}, c_{t-1}).

    Returns (state_t, out, cache); out holds this step's ``nll`` = -log p(x_t | z_t, h_{t-1}) and ``kl``, each
    (B,) and zero where m_t is 0, and the posterior and prior Gaussians (B, Z).
    """
    h = state[0]  # h_{t-1} (B, H): every part below reads the state before this step
    c = {"mask": m_t, "state": state, "kind": config.output_kind}  # this step's cache
    px, c["phi_x"] = mlp_forward(sub(params, "phi_x."), x_t)  # phi_x(x_t) (B, F)
    c["F"] = px.shape[1]  # where [phi_x(x_t), h_{t-1}] and [phi_z(z_t), h_{t-1}] are cut apart in backward
    # eq. (4), the prior: [mu_0, sigma_0] = phi_prior(h_{t-1}) (VRNN-I: N(0, I))
    (p_mu, p_sigma), c["prior"] = prior_forward(params, config, h)  # (B, Z) each
    # eq. (8), the encoder: [mu_z, sigma_z] = phi_enc(phi_x(x_t), h_{t-1})
    he, c["enc"] = mlp_forward(sub(params, "enc."), np.concatenate([px, h], axis=1))  # (B, F)
    (q_mu, q_sigma), c["enc_heads"] = heads.gaussian_head_forward(params, "enc", he, config.sigma_min)
    # the reparameterisation: z_t = mu_z + sigma_z * eps_t, a sample of q(z_t | x_<=t, z_<t)
    z, c["z"] = reparam_forward(q_mu, q_sigma, eps_t)  # (B, Z)
    pz, c["phi_z"] = mlp_forward(sub(params, "phi_z."), z)  # phi_z(z_t) (B, F)
    # eq. (5), the decoder: p(x_t | z_t, h_{t-1}) from phi_dec(phi_z(z_t), h_{t-1})
    hd, c["dec"] = mlp_forward(sub(params, "dec."), np.concatenate([pz, h], axis=1))  # (B, F)
    dist, c["dec_heads"] = heads.output_params_forward(params, config.output_kind, hd, config.x_dim,
                                                       config.n_mix, config.sigma_min)
    logp, c["logp"] = heads.output_logpdf_forward(dist, config.output_kind, x_t)  # (B,)
    # eq. (10)'s KL term: KL(q(z_t | ...) || p(z_t | ...)), summed over the Z dimensions
    kl, c["kl"] = kl_gaussian_forward(q_mu, q_sigma, p_mu, p_sigma)  # (B,)
    # eq. (6), the recurrence: h_t = f(phi_x(x_t), phi_z(z_t), h_{t-1})
    new_state, c["cell"] = cell_forward(params, config, np.concatenate([px, pz], axis=1), state)
    state_t = masked_state_forward(new_state, state, m_t)  # padded steps keep h_{t-1}
    out = {"nll": -logp * m_t, "kl": kl * m_t, "q_mu": q_mu, "q_sigma": q_sigma, "p_mu": p_mu, "p_sigma": p_sigma}
    return state_t, out, c


def vrnn_step_backward(dnll, dkl, dstate, cache):
    """Backward of vrnn_step_forward, its lines in reverse order. dnll, dkl (B,): the gradients reaching this step's
    two loss terms; dstate: the gradient reaching state_t from the steps after it (dh_next, and dc_next).

    Returns (dstate_prev, grads): the gradient reaching state_{t-1}, and this step's parameter gradients."""
    c, grads = cache, {}
    F, m = c["F"], c["mask"]
    # the mask: state_t = state_{t-1} + m (new_state - state_{t-1})
    dnew, dkeep = masked_state_backward(dstate, m)
    # eq. (6): the cell read [phi_x(x_t), phi_z(z_t)] and state_{t-1}
    dcell_in, dprev, g = cell_backward(dnew, c["cell"])
    add_prefixed(grads, "", g)
    dpx, dpz = dcell_in[:, :F], dcell_in[:, F:]
    # the KL term, kl_t = KL * m: it read both Gaussians
    dq_mu, dq_sigma, dp_mu, dp_sigma = kl_gaussian_backward(dkl * m, c["kl"])
    # eq. (5): log p(x_t | ...) from the decoder, which read [phi_z(z_t), h_{t-1}]
    ddist = heads.output_logpdf_backward(-dnll * m, c["kind"], c["logp"])  # nll_t = -log p * m
    dhd, g = heads.output_params_backward(ddist, c["dec_heads"])
    add_prefixed(grads, "", g)
    ddec_in, g = mlp_backward(dhd, c["dec"])
    add_prefixed(grads, "dec.", g)
    dpz = dpz + ddec_in[:, :F]  # phi_z(z_t) fed the cell and the decoder
    dh = ddec_in[:, F:]  # d h_{t-1}, first of its readers
    # phi_z and the reparameterisation: z_t = mu_z + sigma_z * eps_t
    dz, g = mlp_backward(dpz, c["phi_z"])
    add_prefixed(grads, "phi_z.", g)
    dmu_z, dsigma_z, _ = reparam_backward(dz, c["z"])  # (eps is noise: its gradient is not needed)
    # eq. (8): the encoder's Gaussian reached the loss through z_t and through the KL
    dhe, g = heads.gaussian_head_backward(dmu_z + dq_mu, dsigma_z + dq_sigma, c["enc_heads"])
    add_prefixed(grads, "", g)
    denc_in, g = mlp_backward(dhe, c["enc"])
    add_prefixed(grads, "enc.", g)
    dpx = dpx + denc_in[:, :F]  # phi_x(x_t) fed the cell and the encoder
    dh = dh + denc_in[:, F:]
    # eq. (4): the prior read h_{t-1}
    dh_prior, g = prior_backward(dp_mu, dp_sigma, c["prior"])
    add_prefixed(grads, "", g)
    dh = dh + dh_prior
    # phi_x read the data, which needs no gradient
    _, g = mlp_backward(dpx, c["phi_x"], input_grad=False)
    add_prefixed(grads, "phi_x.", g)
    # every path from state_{t-1} to the loss: the prior, encoder and decoder (dh), the cell, and the mask's carry
    dh_prev = dh + dprev[0] + dkeep[0]
    return (dh_prev,) + tuple(a + b for a, b in zip(dprev[1:], dkeep[1:])), grads


# --- the RNN baselines, one time step (eqs. 1-2) --------------------------------------------------------

def rnn_step_forward(params, config, x_t, m_t, state):
    """One step of RNN-Gauss or RNN-GMM: p(x_t | x_<t) from phi_dec(h_{t-1}) (eq. 2), then
    h_t = f(phi_x(x_t), h_{t-1}) (eq. 1). Returns (state_t, out, cache) as vrnn_step_forward (kl is 0)."""
    h = state[0]
    c = {"mask": m_t, "state": state, "kind": config.output_kind}
    hd, c["dec"] = mlp_forward(sub(params, "dec."), h)  # eq. (2): the output distribution reads h_{t-1} alone
    dist, c["dec_heads"] = heads.output_params_forward(params, config.output_kind, hd, config.x_dim,
                                                       config.n_mix, config.sigma_min)
    logp, c["logp"] = heads.output_logpdf_forward(dist, config.output_kind, x_t)  # (B,)
    px, c["phi_x"] = mlp_forward(sub(params, "phi_x."), x_t)  # eq. (1): h_t = f(phi_x(x_t), h_{t-1})
    new_state, c["cell"] = cell_forward(params, config, px, state)
    state_t = masked_state_forward(new_state, state, m_t)
    return state_t, {"nll": -logp * m_t, "kl": np.zeros_like(logp)}, c


def rnn_step_backward(dnll, dstate, cache):
    """Backward of rnn_step_forward, in reverse: returns (dstate_prev, grads)."""
    c, grads = cache, {}
    dnew, dkeep = masked_state_backward(dstate, c["mask"])
    dpx, dprev, g = cell_backward(dnew, c["cell"])
    add_prefixed(grads, "", g)
    _, g = mlp_backward(dpx, c["phi_x"], input_grad=False)
    add_prefixed(grads, "phi_x.", g)
    ddist = heads.output_logpdf_backward(-dnll * c["mask"], c["kind"], c["logp"])
    dhd, g = heads.output_params_backward(ddist, c["dec_heads"])
    add_prefixed(grads, "", g)
    dh, g = mlp_backward(dhd, c["dec"])
    add_prefixed(grads, "dec.", g)
    dh_prev = dh + dprev[0] + dkeep[0]
    return (dh_prev,) + tuple(a + b for a, b in zip(dprev[1:], dkeep[1:])), grads


# --- the parts a step is made of ------------------------------------------------------------------------

def prior_forward(params, config, h):
    """[mu_0, sigma_0] = phi_prior(h_{t-1}) (eq. 4), or N(0, I) for VRNN-I. Returns ((mu, sigma), cache)."""
    if not config.learned_prior:
        zeros = np.zeros(h.shape[:-1] + (config.z_dim,), h.dtype)
        return (zeros, zeros + 1), None
    hp, mlp_cache = mlp_forward(sub(params, "prior."), h)
    (mu, sigma), head_cache = heads.gaussian_head_forward(params, "prior", hp, config.sigma_min)
    return (mu, sigma), (mlp_cache, head_cache)


def prior_backward(dmu, dsigma, cache):
    """Backward of prior_forward: (d h_{t-1}, grads); VRNN-I's fixed prior passes no gradient (0, {})."""
    if cache is None:
        return 0, {}
    mlp_cache, head_cache = cache
    dhp, grads = heads.gaussian_head_backward(dmu, dsigma, head_cache)
    dh, g = mlp_backward(dhp, mlp_cache)
    return dh, add_prefixed(grads, "prior.", g)


def cell_forward(params, config, x, state):
    """The recurrence f (eqs. 1 and 6), one step of the GRU or the LSTM: returns (new_state, cache)."""
    if config.cell == "gru":
        h_new, cache = gru_cell_forward(sub(params, "gru."), x, state[0])
        return (h_new,), ("gru", cache)
    (h_new, c_new), cache = lstm_cell_forward(sub(params, "lstm."), x, state[0], state[1])
    return (h_new, c_new), ("lstm", cache)


def cell_backward(dnew_state, cache):
    """Backward of cell_forward: returns (dx, dstate_prev, grads keyed by full parameter names)."""
    cell, cache = cache
    if cell == "gru":
        dx, dh, g = gru_cell_backward(dnew_state[0], cache)
        return dx, (dh,), add_prefixed({}, "gru.", g)
    dx, dh, dc, g = lstm_cell_backward(dnew_state, cache)
    return dx, (dh, dc), add_prefixed({}, "lstm.", g)


def masked_state_forward(new_state, state, m):
    """Padded steps (m = 0) leave the state where it was: s_t = s_{t-1} + m (s_new - s_{t-1}), per sequence."""
    return tuple(s + m[:, None] * (n - s) for n, s in zip(new_state, state))


def masked_state_backward(dstate, m):
    """Backward of masked_state_forward: (d new_state, d state_{t-1}) = (m dstate, (1 - m) dstate)."""
    return tuple(d * m[:, None] for d in dstate), tuple(d * (1 - m[:, None]) for d in dstate)
