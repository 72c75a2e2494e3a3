"""Element-wise activations and the stable log-sum-exp / log-softmax, each with its backward pass.

softplus gives every standard deviation in the model (sigma = softplus(a) + sigma_min); log-sum-exp and
log-softmax give the mixture weights of the GMM output (docs/equations.md, "Closed forms").
"""
import numpy as np

from ..validate import check_arrays, check_like


def relu_forward(a):
    """max(a, 0); returns (y, cache)."""
    check_arrays(a=(a, "..."))
    y = np.maximum(a, a.dtype.type(0))  # NaN stays NaN, so a diverged value still reaches the loss
    return y, y  # y > 0 exactly where a > 0 (NaN in both: neither is > 0)


def relu_backward(dy, cache):
    """da = dy where the input was positive, else 0."""
    y = cache
    check_like("dy", dy, y.shape, y.dtype, "...")
    return np.where(y > 0, dy, y.dtype.type(0))


def tanh_forward(a):
    """tanh(a); returns (y, cache)."""
    check_arrays(a=(a, "..."))
    y = np.tanh(a)
    return y, y


def tanh_backward(dy, cache):
    """d tanh(a) / da = 1 - tanh(a)^2."""
    y = cache
    check_like("dy", dy, y.shape, y.dtype, "...")
    return dy * (1 - y * y)


def sigmoid_forward(a):
    """1 / (1 + exp(-a)), computed without overflow for any finite a; returns (y, cache)."""
    check_arrays(a=(a, "..."))
    e = np.exp(-np.abs(a))  # in (0, 1]: never overflows
    d = 1 / (1 + e)
    y = np.where(a >= 0, d, e * d)  # for a < 0, sigmoid(a) = exp(a) / (1 + exp(a)) = e / (1 + e)
    return y, y


def sigmoid_backward(dy, cache):
    """d sigmoid(a) / da = sigmoid(a) (1 - sigmoid(a))."""
    y = cache
    check_like("dy", dy, y.shape, y.dtype, "...")
    return dy * y * (1 - y)


def softplus_forward(a, offset=0.0):
    """log(1 + exp(a)) + offset, finite for any finite a ("Closed forms"); the cache is its slope sigmoid(a).

    ``offset`` is a standard deviation's floor sigma_min (heads.py); np.logaddexp(0, a) never overflows.
    """
    check_arrays(a=(a, "..."))
    y = np.logaddexp(a.dtype.type(0), a) + a.dtype.type(offset)
    slope, _ = sigmoid_forward(a)
    return y, slope


def softplus_backward(dy, cache):
    """d softplus(a) / da = sigmoid(a), kept by the forward."""
    slope = cache  # sigmoid(a)
    check_like("dy", dy, slope.shape, slope.dtype, "...")
    return dy * slope


def logsumexp_forward(a):
    """log sum_k exp(a_k) over the last axis, shifted by the maximum ("Closed forms"); (..., K) -> (...)."""
    check_arrays(a=(a, "... K"))
    m = a.max(axis=-1, keepdims=True)  # (..., 1)
    m = np.where(np.isinf(m), a.dtype.type(0), m)  # an all -inf row (or a +inf) would give inf - inf = nan
    with np.errstate(divide="ignore"):  # an all -inf row sums to 0, and its log-sum-exp is -inf
        out = (m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True)))[..., 0]  # (...)
    return out, (a, out)


def logsumexp_backward(dout, cache):
    """d lse / d a_k = softmax(a)_k = exp(a_k - lse)."""
    a, out = cache
    check_like("dout", dout, out.shape, out.dtype, "...")
    return dout[..., None] * np.exp(a - out[..., None])


def log_softmax_forward(a):
    """a_k - logsumexp(a) over the last axis ("Closed forms"); (..., K) -> (..., K)."""
    lse, lse_cache = logsumexp_forward(a)
    y = a - lse[..., None]
    return y, (y, lse_cache)


def log_softmax_backward(dy, cache):
    """dy - softmax * sum_k dy_k: the identity path plus logsumexp_backward of -sum_k dy_k."""
    y, lse_cache = cache
    check_like("dy", dy, y.shape, y.dtype, "... K")
    return dy + logsumexp_backward(-dy.sum(axis=-1), lse_cache)
