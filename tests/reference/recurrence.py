"""Slow references for the GRU and LSTM: one cell step written straight from reference/equations.md with the
named parameters (no packing), and a Python loop over time that applies the padding mask with np.where."""
import numpy as np

from .activations import sigmoid


def gru_cell(p, x, h):
    """GRU convention; u is the update gate (PyTorch's z)."""
    r = sigmoid(x @ p["W_ir"] + p["b_ir"] + h @ p["W_hr"] + p["b_hr"])
    u = sigmoid(x @ p["W_iz"] + p["b_iz"] + h @ p["W_hz"] + p["b_hz"])
    n = np.tanh(x @ p["W_in"] + p["b_in"] + r * (h @ p["W_hn"] + p["b_hn"]))
    return (1 - u) * n + u * h


def lstm_cell(p, x, h, c):
    """LSTM convention; returns (h_new, c_new)."""
    i = sigmoid(x @ p["W_ii"] + p["b_ii"] + h @ p["W_hi"] + p["b_hi"])
    f = sigmoid(x @ p["W_if"] + p["b_if"] + h @ p["W_hf"] + p["b_hf"])
    g = np.tanh(x @ p["W_ig"] + p["b_ig"] + h @ p["W_hg"] + p["b_hg"])
    o = sigmoid(x @ p["W_io"] + p["b_io"] + h @ p["W_ho"] + p["b_ho"])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def gru_sequence(p, xs, h0, mask=None):
    """hs[t] = gru_cell(xs[t], hs[t-1]), except that rows with mask[t, b] == 0 keep hs[t-1, b]."""
    mask = np.ones(xs.shape[:2]) if mask is None else mask
    h, hs = h0, []
    for t in range(len(xs)):
        padded = mask[t][:, None] == 0  # (B, 1)
        h = np.where(padded, h, gru_cell(p, xs[t], h))
        hs.append(h)
    return np.stack(hs)


def lstm_sequence(p, xs, h0, c0, mask=None):
    """The LSTM over time; padded rows keep both h and c. Returns (hs, cs)."""
    mask = np.ones(xs.shape[:2]) if mask is None else mask
    h, c, hs, cs = h0, c0, [], []
    for t in range(len(xs)):
        padded = mask[t][:, None] == 0  # (B, 1)
        h_new, c_new = lstm_cell(p, xs[t], h, c)
        h, c = np.where(padded, h, h_new), np.where(padded, c, c_new)
        hs.append(h)
        cs.append(c)
    return np.stack(hs), np.stack(cs)
