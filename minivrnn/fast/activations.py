"""The compiled twins of ops/activations.py: element-wise activations and the stable log-sum-exp, with the
same names and results (docs/equations.md, "Closed forms"). The backward passes, and the forwards with no
compiled version (tanh, log-softmax on top of the compiled log-sum-exp), are ops/activations.py's own.
"""
import numpy as np

from . import vecmath
from ..ops.activations import (  # noqa: F401  (plain NumPy already: this module's public names too)
    log_softmax_backward,
    logsumexp_backward,
    sigmoid_backward,
    softplus_backward,
    tanh_backward,
    tanh_forward,
)
from ..validate import check_arrays, check_like
from .jit import kernel, scalar_helper


def relu_forward(a):
    """max(a, 0); returns (y, cache)."""
    check_arrays(a=(a, "..."))
    y = _relu(a)
    return y, y  # y > 0 exactly where a > 0 (NaN in both: neither is > 0)


def relu_backward(dy, cache):
    """da = dy where the input was positive, else 0."""
    y = cache
    check_like("dy", dy, y.shape, y.dtype, "...")
    return relu_grad(dy, y)


def _relu(a):
    """relu_forward's y, a already checked."""
    return np.maximum(a, a.dtype.type(0))


def relu_grad(dy, y):
    """relu_backward's da = dy where y > 0, else 0, dy already checked."""
    da = np.empty(y.shape, y.dtype)
    _relu_backward_kernel(np.ascontiguousarray(dy).reshape(-1), np.ascontiguousarray(y).reshape(-1),
                          da.reshape(-1))
    return da


def sigmoid_forward(a):
    """1 / (1 + exp(-a)), computed without overflow for any finite a."""
    check_arrays(a=(a, "..."))
    y = np.empty(a.shape, dtype=a.dtype)  # C order, so reshape(-1) is a view the kernel writes into
    _sigmoid_kernel(np.ascontiguousarray(a).reshape(-1), y.reshape(-1))
    return y, y


def softplus_forward(a, offset=0.0):
    """log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|)), finite for any finite a; its slope is sigmoid(a).
    ``offset`` is added to y in the same pass (a standard deviation's floor sigma_min: heads.py)."""
    check_arrays(a=(a, "..."))
    y, slope = np.empty(a.shape, dtype=a.dtype), np.empty(a.shape, dtype=a.dtype)  # C order
    softplus_kernel(np.ascontiguousarray(a).reshape(-1), a.dtype.type(offset), y.reshape(-1), slope.reshape(-1))
    return y, slope


def logsumexp_forward(a):
    """log sum_k exp(a_k) over the last axis, with the max-shift trick; (..., K) -> (...)."""
    check_arrays(a=(a, "... K"))
    out = np.empty(a.shape[:-1], dtype=a.dtype)
    rows = np.ascontiguousarray(a).reshape(-1, a.shape[-1])  # (N, K)
    _logsumexp_kernel(rows, out.reshape(-1))
    return out, (a, out)


def log_softmax_forward(a):
    """a_k - logsumexp(a) over the last axis; (..., K) -> (..., K)."""
    lse, lse_cache = logsumexp_forward(a)
    y = a - lse[..., None]
    return y, (y, lse_cache)


# --- scalar helpers, shared by every kernel that needs them (the recurrences, the chain) ----------------
# Each is branch-free arithmetic on vecmath's exp, expm1 and log1p, so a loop over them vectorises and costs a
# fraction of a libm call per element (measured: docs/performance.md, "Polynomial exp and log").
# tests/fast/test_activations.py holds them to a few units in the last place of NumPy's functions.


@scalar_helper
def sigmoid_scalar(a, one):
    """1 / (1 + exp(-a)) of a scalar without overflow (exp(-|a|) is in (0, 1]); ``one`` is 1 in a's dtype."""
    e = vecmath.exp(-abs(a))
    d = one / (one + e)
    return d if a >= 0 else e * d


@scalar_helper
def tanh_scalar(a, one):
    """tanh(a) = sign(a) (1 - e) / (1 + e) with e = exp(-2|a|), the numerator taken as -expm1(-2|a|) so that
    it keeps its precision near 0."""
    two = one + one
    em = vecmath.expm1(-two * abs(a))  # in (-1, 0]
    return np.copysign(-em / (two + em), a)


@scalar_helper
def log1p_scalar(e, one):
    """log(1 + e) for e >= 0 (vecmath.log1p: small e keep their relative precision)."""
    return vecmath.log1p(e)


@scalar_helper
def softplus_scalar(a, one):
    """(softplus(a), sigmoid(a)) of a scalar, sharing one e = exp(-|a|): max(a, 0) + log(1 + e)."""
    e = vecmath.exp(-abs(a))  # in (0, 1]: never overflows
    y = max(a, one - one) + vecmath.log1p(e)
    d = one / (one + e)
    return y, (d if a >= 0 else e * d)


# --- array kernels -------------------------------------------------------------------------------------


@kernel
def softplus_kernel(a, offset, y, slope):
    """y = softplus(a) + offset, slope = sigmoid(a) (1-D arrays; ``offset`` of a's dtype): softplus_scalar's
    lines in two passes, e = exp(-|a|) first (kept in ``slope``), each pass short enough to vectorise well
    (faster than one pass; measured: docs/performance.md, "Polynomial exp and log")."""
    one = a.dtype.type(1.0)
    zero = one - one
    for i in range(a.size):
        slope[i] = vecmath.exp(-abs(a[i]))  # e, for now
    for i in range(a.size):
        e, x = slope[i], a[i]
        y[i] = (max(x, zero) + vecmath.log1p(e)) + offset
        d = one / (one + e)
        slope[i] = d if x >= zero else e * d


@kernel
def split_softplus_kernel(a, offset, first, y, slope):
    """For a (N, 2Z) = [a_1 | a_2] (two heads side by side): first = a_1, y = softplus(a_2) + offset and
    slope = sigmoid(a_2), each (N, Z), C-contiguous. a_2 is gathered first, so that the softplus runs over all
    N*Z entries as one run (a row's Z = 8 are too few to vectorise)."""
    N, Z = first.shape
    pre = np.empty(N * Z, a.dtype)  # a_2, one run
    for n in range(N):
        row, f, p = a[n], first[n], pre[n * Z:(n + 1) * Z]
        for k in range(Z):
            f[k] = row[k]
            p[k] = row[Z + k]
    softplus_kernel(pre, offset, y.reshape(N * Z), slope.reshape(N * Z))


@kernel
def join_scaled_kernel(d_first, dy, slope, out):
    """out (N, 2Z) = [d_first | dy * slope]: the gradient reaching [a_1 | a_2] in split_softplus_kernel."""
    N, Z = d_first.shape
    for n in range(N):
        o, f, g, s = out[n], d_first[n], dy[n], slope[n]
        for k in range(Z):
            o[k] = f[k]
        for k in range(Z):
            o[Z + k] = g[k] * s[k]


@kernel
def _relu_backward_kernel(dy, y, da):
    """da = dy where y > 0, else 0 (1-D arrays); NaN in y gives 0, as y > 0 is false."""
    zero = y.dtype.type(0.0)
    for i in range(y.size):
        da[i] = dy[i] if y[i] > zero else zero


@kernel
def _sigmoid_kernel(a, y):
    one = a.dtype.type(1.0)
    for i in range(a.size):
        y[i] = sigmoid_scalar(a[i], one)


@kernel
def logsumexp_row(a):
    """log sum_k exp(a_k) of a 1-D array, shifted by its maximum (the one compiled log-sum-exp: the mixtures'
    kernels call it row by row too)."""
    m = a[0]
    for k in range(1, a.shape[0]):
        m = max(m, a[k])
    if np.isinf(m):  # all -inf (or a +inf): the shift would give nan
        return m
    s = a.dtype.type(0.0)
    for k in range(a.shape[0]):
        s += np.exp(a[k] - m)
    return m + np.log(s)


@kernel
def _logsumexp_kernel(a, out):
    """out[n] = log sum_k exp(a[n, k]) for a of shape (N, K)."""
    for n in range(a.shape[0]):
        out[n] = logsumexp_row(a[n])
