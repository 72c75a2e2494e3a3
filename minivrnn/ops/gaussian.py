"""The diagonal Gaussian log-density, eq. (5)'s output density (and eq. (2)'s for the RNN-Gauss baseline).

    log N(x; mu, sigma) = -0.5 * sum_d [ log(2 pi) + 2 log sigma_d + u_d^2 ],   u = (x - mu) / sigma

(reference/equations.md, "Closed forms"). sigma arrives already positive (softplus + sigma_min); it is
not floored again here. The per-row helper ``_gaussian_row`` is shared with the mixture in gmm.py.
"""
import numpy as np

from .._validate import check_arrays, check_like
from ._jit import kernel

LOG_2PI = float(np.log(2.0 * np.pi))


def gaussian_logpdf_forward(x, mu, sigma):
    """log N(x; mu, diag(sigma^2)), summed over the last axis: (..., D) x3 -> (...); returns (logp, cache)."""
    check_arrays(x=(x, "... D"), mu=(mu, "... D"), sigma=(sigma, "... D"))
    D = x.shape[-1]
    logp = np.empty(x.shape[:-1], dtype=x.dtype)  # (...) C order, so reshape(-1) is a view
    _gaussian_logpdf_kernel(
        np.ascontiguousarray(x).reshape(-1, D),  # (N, D), N the product of the leading axes
        np.ascontiguousarray(mu).reshape(-1, D),  # (N, D)
        np.ascontiguousarray(sigma).reshape(-1, D),  # (N, D)
        logp.reshape(-1),  # (N,)
    )
    return logp, (x, mu, sigma)


def gaussian_logpdf_backward(dlogp, cache):
    """Backward of gaussian_logpdf_forward: returns (dx, dmu, dsigma).

    Plain NumPy with broadcasting, so gmm.py reuses it for all K components at once (x of shape (..., 1, D)).
    """
    x, mu, sigma = cache
    check_like("dlogp", dlogp, mu.shape[:-1], mu.dtype, "...")  # mu's, not x's: gmm.py broadcasts x
    u = (x - mu) / sigma  # (..., D) the standardised residual, recomputed
    # logp = -0.5 * sum_d [log 2pi + 2 log sigma_d + u_d^2]
    dlogp = dlogp[..., None]  # (..., 1): every d receives its row's gradient
    du = -dlogp * u  # from -0.5 * u^2
    dsigma = -dlogp / sigma  # from -0.5 * 2 log sigma
    # u = (x - mu) / sigma
    dx = du / sigma
    dmu = -dx
    dsigma = dsigma - du * u / sigma
    return dx, dmu, dsigma


@kernel
def _gaussian_row(x, mu, sigma):
    """log N(x; mu, diag(sigma^2)) of one row: 1-D arrays of D values -> a scalar of their dtype."""
    log_2pi, two, half = x.dtype.type(LOG_2PI), x.dtype.type(2.0), x.dtype.type(0.5)
    total = x.dtype.type(0.0)
    for d in range(x.shape[0]):
        u = (x[d] - mu[d]) / sigma[d]
        total += log_2pi + two * np.log(sigma[d]) + u * u
    return -half * total


@kernel
def _gaussian_logpdf_kernel(x, mu, sigma, logp):
    """logp[n] = log N(x[n]; mu[n], sigma[n]) for arrays of shape (N, D) -> (N,)."""
    for n in range(x.shape[0]):
        logp[n] = _gaussian_row(x[n], mu[n], sigma[n])
