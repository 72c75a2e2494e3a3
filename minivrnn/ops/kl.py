"""KL(q || p) between diagonal Gaussians, the KL term of the ELBO, eq. (10) (and eq. (3)).

docs/equations.md ("Closed forms") gives, per dimension,
    log(s_p / s_q) + (s_q^2 + (mu_q - mu_p)^2) / (2 s_p^2) - 1/2.
With v = log(s_q / s_p) and t = (mu_q - mu_p) / s_p this is the same number written as
    0.5 * (expm1(2 v) - 2 v + t^2),
which is what we compute: w = 2 v is one float, passed to expm1 and subtracted, so a term is >= 0 whenever the
computed expm1(w) is >= w, as a faithfully rounded expm1 gives (docs/equations.md, "Closed forms"); the KL is
exactly 0 when q equals p. The textbook form subtracts nearly equal numbers when q is close to p and can round
below 0.
"""
import numpy as np

from ..validate import check_arrays, check_like


def kl_gaussian_forward(mu_q, sigma_q, mu_p, sigma_p):
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) summed over the last axis, "Closed forms": (..., Z) x4 -> (...)."""
    check_arrays(
        mu_q=(mu_q, "... Z"), sigma_q=(sigma_q, "... Z"), mu_p=(mu_p, "... Z"), sigma_p=(sigma_p, "... Z")
    )
    v = np.log(sigma_q / sigma_p)  # (..., Z) log ratio of the standard deviations
    t = (mu_q - mu_p) / sigma_p  # (..., Z) the gap between the means, in p's standard deviations
    kl = 0.5 * (np.expm1(2 * v) - 2 * v + t * t).sum(axis=-1)  # (...)
    return kl, (mu_q, sigma_q, mu_p, sigma_p)


def kl_gaussian_backward(dkl, cache):
    """Backward of kl_gaussian_forward: returns (dmu_q, dsigma_q, dmu_p, dsigma_p)."""
    mu_q, sigma_q, mu_p, sigma_p = cache
    check_like("dkl", dkl, mu_q.shape[:-1], mu_q.dtype, "...")
    v = np.log(sigma_q / sigma_p)  # (..., Z) recomputed, as the forward
    t = (mu_q - mu_p) / sigma_p
    # kl = sum_z 0.5 * (expm1(2 v) - 2 v + t^2)
    dkl = dkl[..., None]  # (..., 1): every z receives its row's gradient
    dv = dkl * np.expm1(2 * v)  # d/dv 0.5 (exp(2 v) - 1 - 2 v) = exp(2 v) - 1
    dt = dkl * t
    # t = (mu_q - mu_p) / sigma_p
    dmu_q = dt / sigma_p
    dmu_p = -dmu_q
    dsigma_p = -dt * t / sigma_p
    # v = log sigma_q - log sigma_p
    dsigma_q = dv / sigma_q
    dsigma_p = dsigma_p - dv / sigma_p
    return dmu_q, dsigma_q, dmu_p, dsigma_p
