"""The compiled engine: the training step of model.py over all T*B rows at once, with the one sequential
part, the VRNN's chain (encoder -> z_t -> phi_z -> recurrence), in compiled loops (chain.py).

It computes exactly what the readable engine (minivrnn/readable.py) computes, in a different order: every
step's prior, decoder, KL and log-density run after the loop as single passes over all rows, and every weight
gradient is one matrix product over all rows. tests/test_engines.py holds the two equal in float64.

VRNN (eqs. 4-10 of docs/equations.md), per time step t, with h_{t-1} the state before the step:
    phi_x(x_t)                                   every frame, all rows at once
    [mu_z, sigma_z] = enc(phi_x(x_t), h_{t-1})   eq. (8)   ┐
    z_t = mu_z + sigma_z * eps_t                 reparam.  │ the only sequential chain:
    h_t = f(phi_x(x_t), phi_z(z_t), h_{t-1})     eq. (6)   ┘ a loop over t (chain.py)
    [mu_0, sigma_0] = prior(h_{t-1})             eq. (4)   all rows at once, after the loop
    p(x_t | z_t, h_{t-1}) from dec(phi_z(z_t), h_{t-1})   eq. (5)   all rows at once
    loss = -sum_t [ log p(x_t | ...) - KL(q || p) ] / B   the negative of eq. (10)
RNN baselines (eqs. 1-2): h_t = f(phi_x(x_t), h_{t-1}) (a compiled loop); p(x_t | x_<t) from dec(h_{t-1}).
"""
import numpy as np

from ..params import add_prefixed, sub
from ..validate import check_arrays
from . import gru, heads, lstm
from .chain import chain_backward, chain_forward
from .gru import gru_sequence_backward, gru_sequence_forward
from .kl import kl_gaussian_backward, kl_gaussian_forward
from .linear import mlp_backward, mlp_forward
from .lstm import lstm_sequence_backward, lstm_sequence_forward
from .recurrent import gate_param_specs


def forward(params, config, x, mask, eps, state0, kl_weight):
    """The training step's forward pass, inputs already checked (model.forward). Returns (result, cache) as
    model.forward documents them."""
    T, B = mask.shape
    px, px_cache = mlp_forward(sub(params, "phi_x."), x)  # (T, B, F), every frame at once
    if config.latent:
        chain, loop = chain_forward(params, config, px, mask, eps, state0)  # the sequential part, compiled
        h_prevs, q_mu, q_sigma, state = chain["h_prevs"], chain["q_mu"], chain["q_sigma"], chain["final_state"]
        dec_in = np.concatenate([chain["pz"], h_prevs], axis=2)  # (T, B, F + H): dec sees [phi_z(z_t), h_{t-1}]
        (p_mu, p_sigma), prior = prior_forward(params, config, h_prevs)
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

def cell_forward(params, config, x, state, packed=None):
    """One step of the recurrence for either cell (generation uses it); returns (new_state, cache). A loop over
    steps passes ``packed = packed_cell(params, config)``, made once, so that the gates are not packed again
    at every step."""
    packed = packed_cell(params, config) if packed is None else packed
    if config.cell == "gru":
        h, cache = gru.packed_cell_forward(packed, x, state[0])
        return (h,), cache
    (h, c), cache = lstm.packed_cell_forward(packed, x, state[0], state[1])
    return (h, c), cache


def packed_cell(params, config):
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

def prior_forward(params, config, h_prevs):
    """[mu_0, sigma_0] = phi^prior(h_{t-1}) (eq. 4), or N(0, I) for VRNN-I: ((mu, sigma), cache), h_prevs of any
    leading shape (..., H)."""
    if not config.learned_prior:
        zeros = np.zeros(h_prevs.shape[:-1] + (config.z_dim,), dtype=h_prevs.dtype)
        return (zeros, zeros + 1), None
    hp, mlp_cache = mlp_forward(sub(params, "prior."), h_prevs)
    (mu, sigma), head_cache = heads.gaussian_head_forward(params, "prior", hp, config.sigma_min)
    return (mu, sigma), (mlp_cache, head_cache)


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
