"""The pen-stroke output of the paper's IAM-OnDB model (Graves 2013 style), with its backward passes.

A point x_t = (dx, dy, e) has the likelihood (docs/equations.md, "Pen-stroke output")
    p(x_t) = [ sum_k pi_k N2((dx, dy); mu_k, sigma_k, rho_k) ] * Bernoulli(e; sigmoid(a_pen)),
the decoder's output distribution (in place of the Gaussian of eq. (5)); its log-likelihood is the sum of
``bivariate_gmm_logpdf`` and ``bernoulli_logpmf`` below. The mixture is built from parts that already
exist: log pi = log_softmax(logits), then log p = logsumexp_k(log pi_k + log N2_k); only the bivariate
normal N2 of each component is new.
"""
import numpy as np

from ..validate import check_arrays, check_like
from .activations import (
    log_softmax_backward,
    log_softmax_forward,
    logsumexp_backward,
    logsumexp_forward,
    softplus_backward,
    softplus_forward,
)


def bernoulli_logpmf_forward(e, logit):
    """log Bernoulli(e; sigmoid(logit)) = e * logit - softplus(logit), "Pen-stroke output"; finite for any
    finite logit. e is the pen-up bit (data, 0 or 1); any leading shape. Returns (logp, cache)."""
    check_arrays(e=(e, "..."), logit=(logit, "..."))
    sp, sp_cache = softplus_forward(logit)  # (...) log(1 + exp(logit)), stable
    logp = e * logit - sp  # (...)
    return logp, (e, sp_cache)


def bernoulli_logpmf_backward(dlogp, cache):
    """dlogit = dlogp * (e - sigmoid(logit)); e is data and gets no gradient."""
    e, sp_cache = cache
    check_like("dlogp", dlogp, sp_cache.shape, sp_cache.dtype, "...")  # the slope has logit's shape
    dlogit = dlogp * e - softplus_backward(dlogp, sp_cache)  # softplus' slope is sigmoid(logit)
    return dlogit


def check_bivariate_gmm_inputs(xy, logits, mu, sigma, rho):
    """The shapes and dtypes of bivariate_gmm_logpdf's inputs, and the values that make N2 defined:
    K >= 1, sigma > 0, |rho| < 1 (at |rho| = 1 the normal is degenerate and log N2 is infinite)."""
    check_arrays(xy=(xy, "... 2"), logits=(logits, "... K"), mu=(mu, "... K 2"),
                 sigma=(sigma, "... K 2"), rho=(rho, "... K"))
    if logits.shape[-1] == 0:
        raise ValueError("logits: expected at least one mixture component (K >= 1), got K = 0")
    # NaN fails both value checks, as it should.
    if not np.all(sigma > 0):
        raise ValueError(f"sigma: expected standard deviations > 0, got a minimum of {np.min(sigma)}")
    if not np.all(np.abs(rho) < 1):
        raise ValueError(f"rho: expected correlations strictly inside (-1, 1), got {np.max(np.abs(rho))}")


def bivariate_gmm_logpdf_forward(xy, logits, mu, sigma, rho):
    """log sum_k softmax(logits)_k N2(xy; mu_k, sigma_k, rho_k), the pen offsets' density, "Pen-stroke output".

    xy (..., 2), logits (..., K), mu and sigma > 0 (..., K, 2), rho (..., K) strictly inside (-1, 1).
    Returns (logp (...), cache).
    """
    check_bivariate_gmm_inputs(xy, logits, mu, sigma, rho)
    log_pi, pi_cache = log_softmax_forward(logits)  # (..., K) log mixture weights
    log_n, n_cache = _bivariate_normal_forward(xy, mu, sigma, rho)  # (..., K) log N2 of each component
    logp, lse_cache = logsumexp_forward(log_pi + log_n)  # (...) max-shifted log-sum-exp over k
    return logp, (pi_cache, n_cache, lse_cache)


def bivariate_gmm_logpdf_backward(dlogp, cache):
    """Backward of bivariate_gmm_logpdf_forward: returns (dxy, dlogits, dmu, dsigma, drho)."""
    pi_cache, n_cache, lse_cache = cache
    logp = lse_cache[1]  # the log-sum-exp's output is logp
    check_like("dlogp", dlogp, logp.shape, logp.dtype, "...")
    da = logsumexp_backward(dlogp, lse_cache)  # (..., K) dlogp * responsibilities
    dlogits = log_softmax_backward(da, pi_cache)  # the sum log_pi + log_n passes da to both terms
    dxy, dmu, dsigma, drho = _bivariate_normal_backward(da, n_cache)
    return dxy, dlogits, dmu, dsigma, drho


def _bivariate_normal_forward(xy, mu, sigma, rho):
    """log N2(xy; mu_k, sigma_k, rho_k) for every component k, "Pen-stroke output": (..., K)."""
    s1, s2 = sigma[..., 0], sigma[..., 1]  # (..., K) each
    u = (xy[..., None, 0] - mu[..., 0]) / s1  # (..., K) standardised dx
    v = (xy[..., None, 1] - mu[..., 1]) / s2  # (..., K) standardised dy
    c = (1 - rho) * (1 + rho)  # 1 - rho^2, without cancellation as |rho| -> 1
    q = u * u + v * v - 2 * rho * u * v  # Zq
    log_n = -np.log(2 * np.pi * s1 * s2 * np.sqrt(c)) - q / (2 * c)
    return log_n, (s1, s2, rho, u, v, c, q)


def _bivariate_normal_backward(dlog_n, cache):
    """Backward of _bivariate_normal_forward, its lines in reverse: (dxy, dmu, dsigma, drho)."""
    s1, s2, rho, u, v, c, q = cache
    # log_n = -log(2 pi s1 s2 sqrt(c)) - q / (2 c)
    ds1 = -dlog_n / s1
    ds2 = -dlog_n / s2
    dc = dlog_n * (-0.5 / c + q / (2 * c * c))
    dq = -dlog_n / (2 * c)
    # q = u^2 + v^2 - 2 rho u v
    du = dq * 2 * (u - rho * v)
    dv = dq * 2 * (v - rho * u)
    drho = -dq * 2 * u * v
    # c = (1 - rho)(1 + rho) = 1 - rho^2
    drho = drho + dc * (-2 * rho)
    # v = (dy - mu_k[1]) / s2 and u = (dx - mu_k[0]) / s1; xy is shared by the K components
    ddy, dmu_1, ds2 = (dv / s2).sum(axis=-1), -dv / s2, ds2 - dv * v / s2
    ddx, dmu_0, ds1 = (du / s1).sum(axis=-1), -du / s1, ds1 - du * u / s1
    dxy = np.stack([ddx, ddy], axis=-1)  # (..., 2)
    dmu = np.stack([dmu_0, dmu_1], axis=-1)  # (..., K, 2)
    dsigma = np.stack([ds1, ds2], axis=-1)  # (..., K, 2)
    return dxy, dmu, dsigma, drho
