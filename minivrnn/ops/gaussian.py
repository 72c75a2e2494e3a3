"""The diagonal Gaussian log-density, eq. (5)'s output density (and eq. (2)'s for the RNN-Gauss baseline):

    log N(x; mu, sigma) = -0.5 * sum_d [ log(2 pi) + 2 log sigma_d + u_d^2 ],   u = (x - mu) / sigma

(docs/equations.md, "Closed forms"). sigma arrives already positive (softplus + sigma_min); it is not
floored again here.
"""
import numpy as np

from ..validate import check_arrays, check_like

LOG_2PI = float(np.log(2.0 * np.pi))


def gaussian_logpdf_forward(x, mu, sigma):
    """log N(x; mu, diag(sigma^2)) summed over the last axis, "Closed forms": (..., D) x3 -> (...)."""
    check_arrays(x=(x, "... D"), mu=(mu, "... D"), sigma=(sigma, "... D"))
    u = (x - mu) / sigma  # (..., D) the standardised residual
    logp = -0.5 * (LOG_2PI + 2 * np.log(sigma) + u * u).sum(axis=-1)  # (...)
    return logp, (x, mu, sigma)


def gaussian_logpdf_backward(dlogp, cache):
    """Backward of gaussian_logpdf_forward: returns (dx, dmu, dsigma).

    It also takes x of shape (..., 1, D) broadcast against mu and sigma (..., K, D), one Gaussian per mixture
    component sharing x; dx then has mu's shape, and the caller sums it over the components.
    """
    x, mu, sigma = cache
    check_like("dlogp", dlogp, mu.shape[:-1], mu.dtype, "...")  # mu's shape, not x's: x may be broadcast
    u = (x - mu) / sigma  # (..., D) recomputed
    # logp = -0.5 * sum_d [log 2pi + 2 log sigma_d + u_d^2]
    dlogp = dlogp[..., None]  # (..., 1): every d receives its row's gradient
    du = -dlogp * u  # from -0.5 * u^2
    dsigma = -dlogp / sigma  # from -0.5 * 2 log sigma
    # u = (x - mu) / sigma
    dx = du / sigma
    dmu = -dx
    dsigma = dsigma - du * u / sigma
    return dx, dmu, dsigma
