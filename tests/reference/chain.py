"""Slow, readable reference for minivrnn/chain.py: the VRNN's sequential chain as a Python loop over time,
one package op per line (encoder eq. (8) -> reparameterisation -> phi_z -> recurrence eq. (6)).
"""
import numpy as np

from minivrnn.fast import heads
from minivrnn.fast.engine import cell_forward as _cell_forward  # the same one step of the recurrence that generation uses
from minivrnn.fast.gru import gru_cell_backward
from minivrnn.fast.linear import mlp_backward, mlp_forward
from minivrnn.fast.lstm import lstm_cell_backward
from minivrnn.ops.reparam import reparam_backward, reparam_forward
from minivrnn.params import add_prefixed, sub


def _cell_backward(config, dstate, cache):
    """Returns (dx, dstate_prev, grads keyed by full names)."""
    if config.cell == "gru":
        dx, dh, g = gru_cell_backward(dstate[0], cache)
        return dx, (dh,), add_prefixed({}, "gru.", g)
    dx, dh, dc, g = lstm_cell_backward(dstate, cache)
    return dx, (dh, dc), add_prefixed({}, "lstm.", g)


def _masked_step(new_state, state, m):
    """Padded steps (m = 0) leave the state where it was: s_t = s_{t-1} + m (s_new - s_{t-1})."""
    return tuple(s + m[:, None] * (n - s) for n, s in zip(new_state, state))


def _masked_step_backward(dstate, m):
    """Returns (d new_state, d state) for _masked_step."""
    return tuple(d * m[:, None] for d in dstate), tuple(d * (1 - m[:, None]) for d in dstate)


def _vrnn_loop_forward(params, config, px, mask, eps, state):
    """The sequential chain: encoder (8) -> z_t -> phi_z -> recurrence (6)."""
    T, B, F = px.shape
    h_prevs = np.empty((T, B, config.h_dim), dtype=px.dtype)  # (T, B, H)
    pz = np.empty((T, B, F), dtype=px.dtype)  # phi_z(z_t)
    q_mu = np.empty((T, B, config.z_dim), dtype=px.dtype)
    q_sigma = np.empty_like(q_mu)
    steps = []
    for t in range(T):
        h_prevs[t] = state[0]
        he, enc_cache = mlp_forward(sub(params, "enc."), np.concatenate([px[t], state[0]], axis=1))
        (q_mu[t], q_sigma[t]), head_cache = heads.gaussian_head_forward(params, "enc", he, config.sigma_min)
        z, z_cache = reparam_forward(q_mu[t], q_sigma[t], eps[t])
        pz[t], pz_cache = mlp_forward(sub(params, "phi_z."), z)
        new_state, cell_cache = _cell_forward(params, config, np.concatenate([px[t], pz[t]], axis=1), state)
        state = _masked_step(new_state, state, mask[t])
        steps.append((enc_cache, head_cache, z_cache, pz_cache, cell_cache))
    dec_in = np.concatenate([pz, h_prevs], axis=2)  # (T, B, F + H)
    return {"steps": steps, "q_mu": q_mu, "q_sigma": q_sigma}, h_prevs, dec_in, state


def _vrnn_loop_backward(loop, config, mask, dpz, dh_prevs, dq_mu, dq_sigma, grads):
    """Backprop through time along the chain, newest step first; returns d phi_x(x) (T, B, F)."""
    T, B, F = dpz.shape
    dpx = np.empty((T, B, F), dtype=dpz.dtype)
    dstate = tuple(np.zeros_like(dh_prevs[0]) for _ in range(config.n_state))
    for t in reversed(range(T)):
        enc_cache, head_cache, z_cache, pz_cache, cell_cache = loop["steps"][t]
        dnew, dkeep = _masked_step_backward(dstate, mask[t])
        dcell_in, dprev, g = _cell_backward(config, dnew, cell_cache)
        add_prefixed(grads, "", g)
        dz, g = mlp_backward(dcell_in[:, F:] + dpz[t], pz_cache)  # phi_z(z_t) fed the cell and dec
        add_prefixed(grads, "phi_z.", g)
        dmu, dsigma, _ = reparam_backward(dz, z_cache)
        dhe, g = heads.gaussian_head_backward(dmu + dq_mu[t], dsigma + dq_sigma[t], head_cache)
        add_prefixed(grads, "", g)
        denc_in, g = mlp_backward(dhe, enc_cache)
        add_prefixed(grads, "enc.", g)
        dpx[t] = dcell_in[:, :F] + denc_in[:, :F]
        dh = dprev[0] + dkeep[0] + dh_prevs[t] + denc_in[:, F:]  # every reader of h_{t-1}
        dstate = (dh,) + tuple(a + b for a, b in zip(dprev[1:], dkeep[1:]))
    return dpx
