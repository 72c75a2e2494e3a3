"""One step of the LSTM recurrence (h_t, c_t) = f_theta(x_t, h_{t-1}, c_{t-1}) of eqs. (1) and (6), in
PyTorch's LSTMCell convention (docs/equations.md, "LSTM convention"):

    i = sigmoid(x W_ii + b_ii + h W_hi + b_hi);  f = sigmoid(x W_if + b_if + h W_hf + b_hf)
    g = tanh(x W_ig + b_ig + h W_hg + b_hg);     o = sigmoid(x W_io + b_io + h W_ho + b_ho)
    c' = f * c + i * g;   h' = o * tanh(c')

The forward is split into named steps; the backward walks the same steps in reverse, one line per step.
"""
import numpy as np

from ..validate import check_arrays, check_like
from .activations import sigmoid_backward, sigmoid_forward, tanh_backward, tanh_forward
from .gates import gate_keys, gate_param_specs, init_gates

GATES = ("i", "f", "g", "o")  # PyTorch's gate names, in its order
KEYS = gate_keys(GATES)  # W_ii, W_if, W_ig, W_io, W_hi, ..., b_ho


def init_lstm(rng, n_in, n_hidden, dtype=np.float64):
    """PyTorch's LSTMCell initialisation (gates.init_gates)."""
    return init_gates(rng, GATES, n_in, n_hidden, dtype)


def lstm_cell_forward(params, x, h, c):
    """One LSTM step, eq. (6); x (B, I), h and c (B, H); returns ((h_new, c_new), cache)."""
    check_arrays(**gate_param_specs(params, GATES), x=(x, "B I"), h=(h, "B H"), c=(c, "B H"))
    p = params
    # every gate's pre-activation a_k = x W_ik + b_ik + h W_hk + b_hk, (B, H) each
    a = {k: x @ p[f"W_i{k}"] + p[f"b_i{k}"] + h @ p[f"W_h{k}"] + p[f"b_h{k}"] for k in GATES}
    i, i_cache = sigmoid_forward(a["i"])  # input gate
    f, f_cache = sigmoid_forward(a["f"])  # forget gate
    g, g_cache = tanh_forward(a["g"])  # candidate cell
    o, o_cache = sigmoid_forward(a["o"])  # output gate
    c_new = f * c + i * g  # (B, H)
    tanh_c, tanh_c_cache = tanh_forward(c_new)
    h_new = o * tanh_c  # (B, H)
    cache = (params, x, h, c, i, i_cache, f, f_cache, g, g_cache, o_cache, o, tanh_c, tanh_c_cache)
    return (h_new, c_new), cache


def lstm_cell_backward(dstate, cache):
    """Backward of lstm_cell_forward given (dh_new, dc_new), its steps in reverse: returns (dx, dh, dc, grads)."""
    dh_new, dc_new = dstate
    p, x, h, c, i, i_cache, f, f_cache, g, g_cache, o_cache, o, tanh_c, tanh_c_cache = cache
    check_like("dh_new", dh_new, c.shape, c.dtype, "B H")
    check_like("dc_new", dc_new, c.shape, c.dtype, "B H")
    # h_new = o * tanh_c
    do = dh_new * tanh_c
    dtanh_c = dh_new * o
    # tanh_c = tanh(c_new); c_new also reaches the loss directly (the next step's cell)
    dc_new = dc_new + tanh_backward(dtanh_c, tanh_c_cache)
    # c_new = f * c + i * g
    df = dc_new * c
    dc = dc_new * f
    di = dc_new * g
    dg = dc_new * i
    # the gates
    da = {
        "o": sigmoid_backward(do, o_cache),
        "g": tanh_backward(dg, g_cache),
        "f": sigmoid_backward(df, f_cache),
        "i": sigmoid_backward(di, i_cache),
    }
    # a_k = x W_ik + b_ik + h W_hk + b_hk for every gate k
    dx, dh, grads = 0, 0, {}
    for k in GATES:
        dx = dx + da[k] @ p[f"W_i{k}"].T
        dh = dh + da[k] @ p[f"W_h{k}"].T
        grads[f"W_i{k}"], grads[f"b_i{k}"] = x.T @ da[k], da[k].sum(axis=0)
        grads[f"W_h{k}"], grads[f"b_h{k}"] = h.T @ da[k], da[k].sum(axis=0)
    return dx, dh, dc, {k: grads[k] for k in KEYS}  # in the parameters' order
