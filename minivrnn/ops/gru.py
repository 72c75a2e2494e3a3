"""One step of the GRU recurrence h_t = f_theta(x_t, h_{t-1}) of eqs. (1) and (6), in PyTorch's GRUCell
convention (docs/equations.md, "GRU convention"; u is the update gate, which PyTorch calls z):

    r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
    u  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
    n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))
    h' = (1 - u) * n + u * h

The forward is split into named steps; the backward walks the same steps in reverse, one line per step.
"""
import numpy as np

from ..validate import check_arrays, check_like
from .activations import sigmoid_backward, sigmoid_forward, tanh_backward, tanh_forward
from .gates import gate_keys, gate_param_specs, init_gates

GATES = ("r", "z", "n")  # PyTorch's gate names, in its order
KEYS = gate_keys(GATES)  # W_ir, W_iz, W_in, W_hr, ..., b_hn


def init_gru(rng, n_in, n_hidden, dtype=np.float64):
    """PyTorch's GRUCell initialisation (gates.init_gates)."""
    return init_gates(rng, GATES, n_in, n_hidden, dtype)


def gru_cell_forward(params, x, h):
    """One GRU step h' = f_theta(x, h), eq. (6); x (B, I), h (B, H); returns (h_new, cache)."""
    check_arrays(**gate_param_specs(params, GATES), x=(x, "B I"), h=(h, "B H"))
    p = params
    a_r = x @ p["W_ir"] + p["b_ir"] + h @ p["W_hr"] + p["b_hr"]  # (B, H) reset gate's pre-activation
    r, r_cache = sigmoid_forward(a_r)
    a_u = x @ p["W_iz"] + p["b_iz"] + h @ p["W_hz"] + p["b_hz"]  # (B, H) update gate's pre-activation
    u, u_cache = sigmoid_forward(a_u)
    s_n = h @ p["W_hn"] + p["b_hn"]  # (B, H) the state's part of the candidate, before the reset gate
    a_n = x @ p["W_in"] + p["b_in"] + r * s_n  # (B, H)
    n, n_cache = tanh_forward(a_n)
    h_new = (1 - u) * n + u * h  # (B, H)
    return h_new, (params, x, h, r, r_cache, u, u_cache, s_n, n, n_cache)


def gru_cell_backward(dh_new, cache):
    """Backward of gru_cell_forward, its steps in reverse: returns (dx, dh, grads)."""
    p, x, h, r, r_cache, u, u_cache, s_n, n, n_cache = cache
    check_like("dh_new", dh_new, h.shape, h.dtype, "B H")
    g = {}
    # h_new = (1 - u) * n + u * h
    dn = dh_new * (1 - u)
    du = dh_new * (h - n)
    dh = dh_new * u
    # n = tanh(a_n)
    da_n = tanh_backward(dn, n_cache)
    # a_n = x W_in + b_in + r * s_n
    dx = da_n @ p["W_in"].T
    g["W_in"], g["b_in"] = x.T @ da_n, da_n.sum(axis=0)
    dr = da_n * s_n
    ds_n = da_n * r
    # s_n = h W_hn + b_hn
    dh += ds_n @ p["W_hn"].T
    g["W_hn"], g["b_hn"] = h.T @ ds_n, ds_n.sum(axis=0)
    # u = sigmoid(a_u)
    da_u = sigmoid_backward(du, u_cache)
    # a_u = x W_iz + b_iz + h W_hz + b_hz
    dx += da_u @ p["W_iz"].T
    dh += da_u @ p["W_hz"].T
    g["W_iz"], g["b_iz"] = x.T @ da_u, da_u.sum(axis=0)
    g["W_hz"], g["b_hz"] = h.T @ da_u, da_u.sum(axis=0)
    # r = sigmoid(a_r)
    da_r = sigmoid_backward(dr, r_cache)
    # a_r = x W_ir + b_ir + h W_hr + b_hr
    dx += da_r @ p["W_ir"].T
    dh += da_r @ p["W_hr"].T
    g["W_ir"], g["b_ir"] = x.T @ da_r, da_r.sum(axis=0)
    g["W_hr"], g["b_hr"] = h.T @ da_r, da_r.sum(axis=0)
    return dx, dh, {k: g[k] for k in KEYS}  # in the parameters' order
