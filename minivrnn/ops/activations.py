"""Element-wise activations and the stable log-sum-exp / log-softmax, each with its backward pass.

softplus gives every standard deviation in the model (sigma = softplus(a) + sigma_min); log-sum-exp and
log-softmax give the mixture weights of the GMM output (reference/equations.md, "Closed forms").
"""
import numpy as np
from numba import njit

from .._validate import check_arrays


def relu_forward(a):
    """max(a, 0); returns (y, cache)."""
    y = np.maximum(a, 0)
    return y, a > 0


def relu_backward(dy, cache):
    positive = cache
    return dy * positive


def tanh_forward(a):
    y = np.tanh(a)
    return y, y


def tanh_backward(dy, cache):
    y = cache
    return dy * (1 - y * y)


def sigmoid_forward(a):
    """1 / (1 + exp(-a)), computed without overflow for any finite a."""
    check_arrays(a=(a, "..."))
    y = np.empty(a.shape, dtype=a.dtype)  # C order, so reshape(-1) is a view the kernel writes into
    _sigmoid_kernel(np.ascontiguousarray(a).reshape(-1), y.reshape(-1))
    return y, y


def sigmoid_backward(dy, cache):
    y = cache
    return dy * y * (1 - y)


def softplus_forward(a):
    """log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|)), finite for any finite a; its slope is sigmoid(a)."""
    check_arrays(a=(a, "..."))
    y, slope = np.empty(a.shape, dtype=a.dtype), np.empty(a.shape, dtype=a.dtype)  # C order
    _softplus_kernel(np.ascontiguousarray(a).reshape(-1), y.reshape(-1), slope.reshape(-1))
    return y, slope


def softplus_backward(dy, cache):
    slope = cache  # sigmoid(a)
    return dy * slope


def logsumexp_forward(a):
    """log sum_k exp(a_k) over the last axis, with the max-shift trick; (..., K) -> (...)."""
    check_arrays(a=(a, "... K"))
    out = np.empty(a.shape[:-1], dtype=a.dtype)
    rows = np.ascontiguousarray(a).reshape(-1, a.shape[-1])  # (N, K)
    _logsumexp_kernel(rows, out.reshape(-1))
    return out, (a, out)


def logsumexp_backward(dout, cache):
    """d lse / d a_k = softmax(a)_k."""
    a, out = cache
    return dout[..., None] * np.exp(a - out[..., None])


def log_softmax_forward(a):
    """a_k - logsumexp(a) over the last axis; (..., K) -> (..., K)."""
    lse, lse_cache = logsumexp_forward(a)
    y = a - lse[..., None]
    return y, (y, lse_cache)


def log_softmax_backward(dy, cache):
    """dy - softmax * sum_k dy_k: the identity path plus logsumexp_backward of -sum_k dy_k."""
    y, lse_cache = cache
    return dy + logsumexp_backward(-dy.sum(axis=-1), lse_cache)


@njit(cache=True)
def _softplus_kernel(a, y, slope):
    """y = softplus(a), slope = sigmoid(a), sharing one exp(-|a|) per element (1-D arrays)."""
    one = a.dtype.type(1.0)
    for i in range(a.size):
        e = np.exp(-abs(a[i]))  # in (0, 1]: never overflows
        y[i] = max(a[i], a.dtype.type(0.0)) + np.log1p(e)
        slope[i] = one / (one + e) if a[i] >= 0 else e / (one + e)


@njit(cache=True)
def _sigmoid_kernel(a, y):
    one = a.dtype.type(1.0)
    for i in range(a.size):
        e = np.exp(-abs(a[i]))
        y[i] = one / (one + e) if a[i] >= 0 else e / (one + e)


@njit(cache=True)
def _logsumexp_kernel(a, out):
    """out[n] = log sum_k exp(a[n, k]) for a of shape (N, K), shifting by the row maximum."""
    for n in range(a.shape[0]):
        m = a[n, 0]
        for k in range(1, a.shape[1]):
            m = max(m, a[n, k])
        if np.isinf(m):  # all -inf (or a +inf): the shift would give nan
            out[n] = m
            continue
        s = a.dtype.type(0.0)
        for k in range(a.shape[1]):
            s += np.exp(a[n, k] - m)
        out[n] = m + np.log(s)
