"""The compiled twin of ops/gru.py, and the GRU over a whole sequence: h_t = f_theta(x_t, h_{t-1}) of
eqs. (1) and (6), in PyTorch's GRUCell convention.

docs/equations.md, "GRU convention" (u is the update gate, which PyTorch calls z):
    r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
    u  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
    n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))
    h' = (1 - u) * n + u * h

For speed the three gates' weights sit side by side (``pack``): W_i = [W_ir | W_iz | W_in] (I, 3H) and
W_h (H, 3H). Over a sequence, the input side a_i = x @ W_i + b_i of every step is one matrix product over
all T*B rows before the time loop; only a_h = h @ W_h + b_h and the gate arithmetic run inside it.
Backward mirrors this: a reverse-time kernel gives the pre-activation gradients of every step, then each
weight gradient is one product over all T*B rows. ``gru_gates_step`` and ``gru_gates_step_backward``
hold the per-step arithmetic, so that a fused model kernel can call them too.
"""
import numpy as np

from ..ops.gru import GATES, KEYS, init_gru  # noqa: F401  (shared, not compiled)
from ..validate import check_arrays, check_like
from .jit import kernel
from .activations import sigmoid_scalar, tanh_scalar
from .matmul import matmul, sum_rows
from .recurrent import copy_rows, gate_param_specs, masked_update, masked_update_backward, pack_gates, unpack_gates


def pack(params):
    """The gates side by side: returns W_i (I, 3H), W_h (H, 3H), b_i (3H,), b_h (3H,), blocks [r | z | n]."""
    return pack_gates(params, GATES)


def unpack(W_i, W_h, b_i, b_h):
    """The inverse of ``pack`` (used on gradients): the 12 named arrays, each C-contiguous."""
    return unpack_gates(GATES, W_i, W_h, b_i, b_h)


# ----------------------------------------------------------------------------------------------- one step


def gru_cell_forward(params, x, h):
    """One GRU step h' = f_theta(x, h), eq. (6); x (B, I), h (B, H); returns (h_new, cache)."""
    check_arrays(**gate_param_specs(params, GATES), x=(x, "B I"), h=(h, "B H"))
    return packed_cell_forward(pack(params), x, h)


def packed_cell_forward(packed, x, h):
    """gru_cell_forward with the gates already packed (``pack(params)``) and the shapes already checked: a
    generation loop packs once for all its steps, instead of copying every gate weight again at every step
    (measured: docs/performance.md, "Products over all T*B rows")."""
    W_i, W_h, b_i, b_h = packed
    h = np.ascontiguousarray(h)
    a_i = matmul(x, W_i) + b_i  # (B, 3H)
    a_h = matmul(h, W_h) + b_h  # (B, 3H)
    gates, h_new = np.empty_like(a_i), np.empty_like(h)
    gru_gates_step(a_i, a_h, h, gates, h_new)
    return h_new, (x, h, W_i, W_h, a_h, gates)


def gru_cell_backward(dh_new, cache):
    """Backward of gru_cell_forward: returns (dx, dh, grads)."""
    x, h, W_i, W_h, a_h, gates = cache
    check_like("dh_new", dh_new, h.shape, h.dtype, "B H")
    da_i, da_h, dh = np.empty_like(a_h), np.empty_like(a_h), np.empty_like(h)
    gru_gates_step_backward(np.ascontiguousarray(dh_new), a_h, h, gates, da_i, da_h, dh)
    dx = da_i @ W_i.T  # a_i = x @ W_i + b_i
    dh += da_h @ W_h.T  # a_h = h @ W_h + b_h
    return dx, dh, unpack(x.T @ da_i, h.T @ da_h, sum_rows(da_i), sum_rows(da_h))


# --------------------------------------------------------------------------------------- a whole sequence


def gru_sequence_forward(params, xs, h0, mask=None):
    """Run the GRU over time, eq. (6): hs[t] is the state after step t; returns (hs, cache).

    xs (T, B, I), h0 (B, H); mask (T, B) of 0/1 or None: where mask[t, b] == 0 the state does not move
    (hs[t, b] = hs[t-1, b]), for padded variable-length batches.
    """
    masks = {} if mask is None else {"mask": (mask, "T B")}
    check_arrays(**gate_param_specs(params, GATES), xs=(xs, "T B I"), h0=(h0, "B H"), **masks)
    (T, B, I), H = xs.shape, h0.shape[1]
    mask = np.ones((T, B), xs.dtype) if mask is None else np.ascontiguousarray(mask)
    W_i, W_h, b_i, b_h = pack(params)
    a_i = (xs.reshape(T * B, I) @ W_i + b_i).reshape(T, B, 3 * H)  # the input side of every step at once
    hs = np.empty((T, B, H), xs.dtype)
    a_h = np.empty((T, B, 3 * H), xs.dtype)  # h_{t-1} @ W_h + b_h of every step, kept for backward
    gates = np.empty((T, B, 3 * H), xs.dtype)  # [r | u | n] of every step
    _gru_forward_kernel(a_i, np.ascontiguousarray(h0), W_h, b_h, mask, hs, a_h, gates)
    return hs, (xs, h0, hs, mask, W_i, W_h, a_h, gates)


def gru_sequence_backward(dhs, cache):
    """Backprop through time for gru_sequence_forward: returns (dxs (T, B, I), dh0 (B, H), grads)."""
    xs, h0, hs, mask, W_i, W_h, a_h, gates = cache
    check_like("dhs", dhs, hs.shape, hs.dtype, "T B H")
    (T, B, I), H = xs.shape, h0.shape[1]
    h_prev = np.concatenate([h0[None], hs[:-1]])  # (T, B, H): the state each step started from
    da_i, da_h = np.empty_like(a_h), np.empty_like(a_h)  # (T, B, 3H)
    dh0 = np.zeros((B, H), xs.dtype)
    _gru_backward_kernel(np.ascontiguousarray(dhs), mask, h_prev, a_h, gates, np.ascontiguousarray(W_h.T),
                         da_i, da_h, dh0)
    # Every weight gradient is one product over all T*B rows.
    x2, h2 = xs.reshape(T * B, I), h_prev.reshape(T * B, H)
    da_i2, da_h2 = da_i.reshape(T * B, 3 * H), da_h.reshape(T * B, 3 * H)
    dxs = (da_i2 @ W_i.T).reshape(T, B, I)
    return dxs, dh0, unpack(x2.T @ da_i2, h2.T @ da_h2, sum_rows(da_i2), sum_rows(da_h2))


# ------------------------------------------------------------------------------------------ Numba kernels


@kernel
def gru_gates_step(a_i, a_h, h, gates, h_new):
    """GRU convention from the pre-activations a_i, a_h (B, 3H): writes gates = [r | u | n] and h_new.
    Each row is three passes over contiguous runs (r and u together, then n, then h'), so that LLVM
    vectorises each pass (one loop reading all seven streams at once does not)."""
    B, H = h.shape
    one = h.dtype.type(1.0)
    for b in range(B):
        ai, ah, hb, hn = a_i[b], a_h[b], h[b], h_new[b]
        ru, r, u, n = gates[b, :2 * H], gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:]
        for j in range(2 * H):  # r and u
            ru[j] = sigmoid_scalar(ai[j] + ah[j], one)
        ai_n, ah_n = ai[2 * H:], ah[2 * H:]  # (separate views: with offsets into one row, LLVM gives up)
        for j in range(H):  # n = tanh(a_i[n] + r * a_h[n])
            n[j] = tanh_scalar(ai_n[j] + r[j] * ah_n[j], one)
        for j in range(H):  # h' = (1 - u) * n + u * h
            hn[j] = (one - u[j]) * n[j] + u[j] * hb[j]


@kernel
def gru_gates_step_backward(dh_new, a_h, h, gates, da_i, da_h, dh):
    """Backward of gru_gates_step, line by line in reverse: writes da_i, da_h (B, 3H) and dh = dh_new * u
    (the direct path only; the caller adds da_h @ W_h.T). Each gate's part of a row is read through its own
    view (with offsets into one row LLVM does not vectorise the loop; measured: docs/performance.md, "The
    sequential chain in compiled loops")."""
    B, H = h.shape
    one = h.dtype.type(1.0)
    for b in range(B):
        dy, hb, dhb = dh_new[b], h[b], dh[b]
        r, u, n, ah_n = gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:], a_h[b, 2 * H:]
        di_r, di_u, di_n = da_i[b, :H], da_i[b, H:2 * H], da_i[b, 2 * H:]
        dh_r, dh_u, dh_n = da_h[b, :H], da_h[b, H:2 * H], da_h[b, 2 * H:]
        for j in range(H):
            dn = dy[j] * (one - u[j])  # h' = (1 - u) * n + u * h
            du = dy[j] * (hb[j] - n[j])
            dhb[j] = dy[j] * u[j]
            da_n = dn * (one - n[j] * n[j])  # n = tanh(a_n)
            dr = da_n * ah_n[j]  # a_n = a_i[n] + r * a_h[n]
            di_n[j] = da_n
            dh_n[j] = da_n * r[j]
            da_u = du * u[j] * (one - u[j])  # u = sigmoid(a_i[u] + a_h[u])
            di_u[j] = dh_u[j] = da_u
            da_r = dr * r[j] * (one - r[j])  # r = sigmoid(a_i[r] + a_h[r])
            di_r[j] = dh_r[j] = da_r


@kernel
def _gru_forward_kernel(a_i, h0, W_h, b_h, mask, hs, a_h, gates):
    """The time loop: per step a_h[t] = h_{t-1} @ W_h + b_h, the gates, then the masked update into hs[t]."""
    h = h0
    h_new = np.empty_like(h0)  # (B, H)
    for t in range(hs.shape[0]):
        np.dot(h, W_h, a_h[t])  # (B, 3H)
        a_h[t] += b_h
        gru_gates_step(a_i[t], a_h[t], h, gates[t], h_new)
        masked_update(mask[t], h_new, h, hs[t])  # hs[t] = m * h' + (1 - m) * h_{t-1}
        h = hs[t]


@kernel
def _gru_backward_kernel(dhs, mask, h_prev, a_h, gates, W_hT, da_i, da_h, dh):
    """_gru_forward_kernel's loop in reverse. ``dh`` (zeros on entry) carries d loss / d h_t back in time
    and ends as dh0; writes the pre-activation gradients da_i, da_h (T, B, 3H) of every step."""
    dh_new, dh_old = np.empty_like(dh), np.empty_like(dh)  # (B, H)
    dh_gates, dh_matmul = np.empty_like(dh), np.empty_like(dh)
    for t in range(dhs.shape[0] - 1, -1, -1):
        dh += dhs[t]  # h_t is also an output of the sequence
        masked_update_backward(mask[t], dh, dh_new, dh_old)
        gru_gates_step_backward(dh_new, a_h[t], h_prev[t], gates[t], da_i[t], da_h[t], dh_gates)
        np.dot(da_h[t], W_hT, dh_matmul)  # a_h = h_{t-1} @ W_h + b_h
        copy_rows(dh_old, dh)  # h_{t-1} reaches the loss by three paths
        dh += dh_gates
        dh += dh_matmul
