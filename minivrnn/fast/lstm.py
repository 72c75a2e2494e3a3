"""The compiled twin of ops/lstm.py, and the LSTM over a whole sequence: (h_t, c_t) = f_theta(x_t, h_{t-1},
c_{t-1}) of eqs. (1) and (6), PyTorch's LSTMCell convention.

docs/equations.md, "LSTM convention":
    i = sigmoid(x W_ii + b_ii + h W_hi + b_hi);  f = sigmoid(x W_if + b_if + h W_hf + b_hf)
    g = tanh(x W_ig + b_ig + h W_hg + b_hg);     o = sigmoid(x W_io + b_io + h W_ho + b_ho)
    c' = f * c + i * g;   h' = o * tanh(c')

Laid out like gru.py: the gates packed side by side (W_i (I, 4H), W_h (H, 4H), blocks [i | f | g | o]),
the input side of a sequence as one product before the time loop, per-step arithmetic in
``lstm_gates_step`` / ``lstm_gates_step_backward`` for reuse by a fused model kernel. Every gate is a
function of the sum a_i + a_h, so both sides share one pre-activation gradient ``da``.
"""
import numpy as np

from ..ops.lstm import GATES, KEYS, init_lstm  # noqa: F401  (shared, not compiled)
from ..validate import check_arrays, check_like
from .jit import kernel
from .activations import sigmoid_scalar, tanh_scalar
from .matmul import matmul, sum_rows
from .recurrent import copy_rows, gate_param_specs, masked_update, masked_update_backward, pack_gates, unpack_gates


def pack(params):
    """The gates side by side: W_i (I, 4H), W_h (H, 4H), b_i (4H,), b_h (4H,), blocks [i | f | g | o]."""
    return pack_gates(params, GATES)


def unpack(W_i, W_h, b_i, b_h):
    """The inverse of ``pack`` (used on gradients): the 16 named arrays, each C-contiguous."""
    return unpack_gates(GATES, W_i, W_h, b_i, b_h)


# ----------------------------------------------------------------------------------------------- one step


def lstm_cell_forward(params, x, h, c):
    """One LSTM step, eq. (6); x (B, I), h and c (B, H); returns ((h_new, c_new), cache)."""
    check_arrays(**gate_param_specs(params, GATES), x=(x, "B I"), h=(h, "B H"), c=(c, "B H"))
    return packed_cell_forward(pack(params), x, h, c)


def packed_cell_forward(packed, x, h, c):
    """lstm_cell_forward with the gates already packed (``pack(params)``) and the shapes already checked (for a
    generation loop, which packs once for all its steps)."""
    W_i, W_h, b_i, b_h = packed
    h, c = np.ascontiguousarray(h), np.ascontiguousarray(c)
    a_i = matmul(x, W_i) + b_i  # (B, 4H)
    a_h = matmul(h, W_h) + b_h  # (B, 4H)
    gates, tanh_c = np.empty_like(a_i), np.empty_like(c)
    h_new, c_new = np.empty_like(h), np.empty_like(c)
    lstm_gates_step(a_i, a_h, c, gates, tanh_c, c_new, h_new)
    return (h_new, c_new), (x, h, c, W_i, W_h, gates, tanh_c)


def lstm_cell_backward(dstate, cache):
    """Backward of lstm_cell_forward, given (dh_new, dc_new): returns (dx, dh, dc, grads)."""
    dh_new, dc_new = dstate
    x, h, c, W_i, W_h, gates, tanh_c = cache
    check_like("dh_new", dh_new, c.shape, c.dtype, "B H")
    check_like("dc_new", dc_new, c.shape, c.dtype, "B H")
    da, dc = np.empty_like(gates), np.empty_like(c)
    lstm_gates_step_backward(np.ascontiguousarray(dh_new), np.ascontiguousarray(dc_new), c, gates, tanh_c,
                              da, dc)
    dx = da @ W_i.T  # a_i = x @ W_i + b_i
    dh = da @ W_h.T  # a_h = h @ W_h + b_h
    db = sum_rows(da)
    return dx, dh, dc, unpack(x.T @ da, h.T @ da, db, db)


# --------------------------------------------------------------------------------------- a whole sequence


def lstm_sequence_forward(params, xs, h0, c0, mask=None):
    """Run the LSTM over time, eq. (6); returns ((hs, cs), cache) with hs[t], cs[t] the state after step t.

    xs (T, B, I), h0 and c0 (B, H); mask (T, B) of 0/1 or None: where mask[t, b] == 0 neither h nor c
    moves, for padded variable-length batches.
    """
    masks = {} if mask is None else {"mask": (mask, "T B")}
    check_arrays(**gate_param_specs(params, GATES), xs=(xs, "T B I"), h0=(h0, "B H"), c0=(c0, "B H"),
                 **masks)
    (T, B, I), H = xs.shape, h0.shape[1]
    mask = np.ones((T, B), xs.dtype) if mask is None else np.ascontiguousarray(mask)
    W_i, W_h, b_i, b_h = pack(params)
    a_i = (xs.reshape(T * B, I) @ W_i + (b_i + b_h)).reshape(T, B, 4 * H)  # input side and both biases
    hs, cs = np.empty((T, B, H), xs.dtype), np.empty((T, B, H), xs.dtype)
    gates = np.empty((T, B, 4 * H), xs.dtype)  # [i | f | g | o] of every step
    tanh_c = np.empty((T, B, H), xs.dtype)  # tanh(c') of every step (before the mask)
    _lstm_forward_kernel(a_i, np.ascontiguousarray(h0), np.ascontiguousarray(c0), W_h, mask, hs, cs, gates,
                         tanh_c)
    return (hs, cs), (xs, h0, c0, hs, cs, mask, W_i, W_h, gates, tanh_c)


def lstm_sequence_backward(dstates, cache):
    """Backprop through time, given (dhs, dcs) (T, B, H): returns (dxs (T, B, I), dh0, dc0, grads)."""
    dhs, dcs = dstates
    xs, h0, c0, hs, cs, mask, W_i, W_h, gates, tanh_c = cache
    check_like("dhs", dhs, hs.shape, hs.dtype, "T B H")
    check_like("dcs", dcs, cs.shape, cs.dtype, "T B H")
    (T, B, I), H = xs.shape, h0.shape[1]
    h_prev = np.concatenate([h0[None], hs[:-1]])  # (T, B, H): the states each step started from
    c_prev = np.concatenate([c0[None], cs[:-1]])
    da = np.empty_like(gates)  # (T, B, 4H)
    dh0, dc0 = np.zeros((B, H), xs.dtype), np.zeros((B, H), xs.dtype)
    _lstm_backward_kernel(np.ascontiguousarray(dhs), np.ascontiguousarray(dcs), mask, c_prev, gates, tanh_c,
                          np.ascontiguousarray(W_h.T), da, dh0, dc0)
    # Every weight gradient is one product over all T*B rows.
    x2, h2, da2 = xs.reshape(T * B, I), h_prev.reshape(T * B, H), da.reshape(T * B, 4 * H)
    dxs = (da2 @ W_i.T).reshape(T, B, I)
    db = sum_rows(da2)
    return dxs, dh0, dc0, unpack(x2.T @ da2, h2.T @ da2, db, db)


# ------------------------------------------------------------------------------------------ Numba kernels


@kernel
def lstm_gates_step(a_i, a_h, c, gates, tanh_c, c_new, h_new):
    """LSTM convention from the pre-activation a_i + a_h (B, 4H): writes gates = [i | f | g | o],
    tanh_c = tanh(c_new), c_new and h_new. Each row is passes over contiguous runs, so that each
    vectorises."""
    B, H = c.shape
    one = c.dtype.type(1.0)
    for b in range(B):
        ai, ah, gt, cb, tc, cn, hn = a_i[b], a_h[b], gates[b], c[b], tanh_c[b], c_new[b], h_new[b]
        for j in range(2 * H):  # i and f
            gt[j] = sigmoid_scalar(ai[j] + ah[j], one)
        for j in range(2 * H, 3 * H):  # g
            gt[j] = tanh_scalar(ai[j] + ah[j], one)
        for j in range(3 * H, 4 * H):  # o
            gt[j] = sigmoid_scalar(ai[j] + ah[j], one)
        i, f, g, o = gt[:H], gt[H:2 * H], gt[2 * H:3 * H], gt[3 * H:]  # separate views vectorise
        for j in range(H):  # c' = f * c + i * g, h' = o * tanh(c')
            cn[j] = f[j] * cb[j] + i[j] * g[j]
            tc[j] = tanh_scalar(cn[j], one)
            hn[j] = o[j] * tc[j]


@kernel
def lstm_gates_step_backward(dh_new, dc_new, c, gates, tanh_c, da, dc):
    """Backward of lstm_gates_step, line by line in reverse: writes da (B, 4H), the gradient of the
    pre-activation a_i + a_h, and dc = d loss / d c (the caller adds da @ W_h.T to get dh). Each gate's part of
    a row is read through its own view, so that the loop vectorises."""
    B, H = c.shape
    one = c.dtype.type(1.0)
    for b in range(B):
        dy, dcn, cb, tc, dcb = dh_new[b], dc_new[b], c[b], tanh_c[b], dc[b]
        i, f, g, o = gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:3 * H], gates[b, 3 * H:]
        da_i, da_f, da_g, da_o = da[b, :H], da[b, H:2 * H], da[b, 2 * H:3 * H], da[b, 3 * H:]
        for j in range(H):
            do = dy[j] * tc[j]  # h' = o * tanh(c')
            dc_total = dcn[j] + dy[j] * o[j] * (one - tc[j] * tc[j])
            df = dc_total * cb[j]  # c' = f * c + i * g
            dcb[j] = dc_total * f[j]
            di = dc_total * g[j]
            dg = dc_total * i[j]
            da_o[j] = do * o[j] * (one - o[j])  # o = sigmoid(a_o)
            da_g[j] = dg * (one - g[j] * g[j])  # g = tanh(a_g)
            da_f[j] = df * f[j] * (one - f[j])  # f = sigmoid(a_f)
            da_i[j] = di * i[j] * (one - i[j])  # i = sigmoid(a_i)


@kernel
def _lstm_forward_kernel(a_i, h0, c0, W_h, mask, hs, cs, gates, tanh_c):
    """The time loop: per step a_h = h_{t-1} @ W_h, the gates, then the masked update into hs[t], cs[t]."""
    h, c = h0, c0
    a_h = np.empty_like(a_i[0])  # (B, 4H)
    h_new, c_new = np.empty_like(h0), np.empty_like(c0)  # (B, H)
    for t in range(hs.shape[0]):
        np.dot(h, W_h, a_h)
        lstm_gates_step(a_i[t], a_h, c, gates[t], tanh_c[t], c_new, h_new)
        masked_update(mask[t], h_new, h, hs[t])  # hs[t] = m * h' + (1 - m) * h_{t-1}
        masked_update(mask[t], c_new, c, cs[t])  # cs[t] = m * c' + (1 - m) * c_{t-1}
        h, c = hs[t], cs[t]


@kernel
def _lstm_backward_kernel(dhs, dcs, mask, c_prev, gates, tanh_c, W_hT, da, dh, dc):
    """_lstm_forward_kernel's loop in reverse. ``dh``, ``dc`` (zeros on entry) carry the gradients of the
    state back in time and end as dh0, dc0; writes da (T, B, 4H), every step's pre-activation gradient."""
    dh_new, dh_old, dh_matmul = np.empty_like(dh), np.empty_like(dh), np.empty_like(dh)  # (B, H)
    dc_new, dc_old, dc_gates = np.empty_like(dc), np.empty_like(dc), np.empty_like(dc)
    for t in range(dhs.shape[0] - 1, -1, -1):
        dh += dhs[t]  # h_t and c_t are also outputs of the sequence
        dc += dcs[t]
        masked_update_backward(mask[t], dh, dh_new, dh_old)
        masked_update_backward(mask[t], dc, dc_new, dc_old)
        lstm_gates_step_backward(dh_new, dc_new, c_prev[t], gates[t], tanh_c[t], da[t], dc_gates)
        np.dot(da[t], W_hT, dh_matmul)  # a_h = h_{t-1} @ W_h
        copy_rows(dh_old, dh)  # h_{t-1} reaches the loss through the mask's carry and through a_h
        dh += dh_matmul
        copy_rows(dc_old, dc)  # c_{t-1} through the mask's carry and through c' = f * c + i * g
        dc += dc_gates
