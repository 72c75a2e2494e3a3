import numpy as np


def softplus(a):
    return np.logaddexp(0.0, a)


def sigmoid(a):
    """Textbook 1 / (1 + exp(-a)), evaluated in float64 (overflow of exp(-a) gives exactly 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(a, dtype=np.float64)))


def logsumexp(a):
    """Row by row: shift by the maximum, sum the exponentials, shift back."""
    a = np.asarray(a, dtype=np.float64)
    m = a.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True)))[..., 0]
