"""The compiled twin of ops/pen.py: the pen-stroke output of the paper's IAM-OnDB model (Graves 2013 style).

A point x_t = (dx, dy, e) has the likelihood (docs/equations.md, "Pen-stroke output")
    p(x_t) = [ sum_k pi_k N2((dx, dy); mu_k, sigma_k, rho_k) ] * Bernoulli(e; sigmoid(a_pen)),
the decoder's output distribution (in place of the Gaussian of eq. 5); its log-likelihood is the sum of
``bivariate_gmm_logpdf`` and ``bernoulli_logpmf`` below.

The mixture is built from parts that already exist: log pi = log_softmax(logits), then
log p = logsumexp_k(log pi_k + log N2_k). Only the per-component N2 is new; it has one Numba kernel for
the forward and one for the backward, written as scalar code so that the backward mirrors it line by line.
The input checks are ops/pen.py's.
"""
import math

import numpy as np

from ..ops.pen import bernoulli_logpmf_backward, check_bivariate_gmm_inputs  # noqa: F401  (not compiled)
from ..validate import check_arrays, check_like
from .jit import kernel
from .activations import (
    log_softmax_backward,
    log_softmax_forward,
    logsumexp_backward,
    logsumexp_forward,
    softplus_forward,
)

_TWO_PI = 2.0 * math.pi


def bernoulli_logpmf_forward(e, logit):
    """log Bernoulli(e; sigmoid(logit)) = e * logit - softplus(logit), finite for any finite logit.

    e is the pen-up bit (data, 0 or 1); any leading shape. Returns (logp, cache).
    """
    check_arrays(e=(e, "..."), logit=(logit, "..."))
    sp, sp_cache = softplus_forward(logit)  # (...) log(1 + exp(logit)), stable
    logp = e * logit - sp  # (...)
    return logp, (e, sp_cache)


def bivariate_gmm_logpdf_forward(xy, logits, mu, sigma, rho):
    """log sum_k softmax(logits)_k N2(xy; mu_k, sigma_k, rho_k), the pen offsets' density.

    xy (..., 2), logits (..., K), mu and sigma > 0 (..., K, 2), rho (..., K) strictly inside (-1, 1)
    (at |rho| = 1 the normal is degenerate and log N2 is infinite). Returns (logp (...), cache).
    The values are checked too: in the kernel a zero sigma would divide by zero.
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
    check_like("dlogp", dlogp, logp.shape, logp.dtype, "...")  # a wrong shape must not reach the kernel
    da = logsumexp_backward(dlogp, lse_cache)  # (..., K) dlogp * responsibilities
    dlogits = log_softmax_backward(da, pi_cache)  # the sum log_pi + log_n passes da to both terms
    dxy, dmu, dsigma, drho = _bivariate_normal_backward(da, n_cache)
    return dxy, dlogits, dmu, dsigma, drho


def _bivariate_normal_forward(xy, mu, sigma, rho):
    """log N2(xy; mu_k, sigma_k, rho_k) for every component k: (..., K); shapes already checked."""
    K = rho.shape[-1]
    xy2 = np.ascontiguousarray(xy).reshape(-1, 2)  # (N, 2) with N the product of the leading axes
    mu3 = np.ascontiguousarray(mu).reshape(-1, K, 2)  # (N, K, 2)
    sigma3 = np.ascontiguousarray(sigma).reshape(-1, K, 2)  # (N, K, 2)
    rho2 = np.ascontiguousarray(rho).reshape(-1, K)  # (N, K)
    log_n = np.empty(rho2.shape, dtype=rho.dtype)  # (N, K), C order
    uv = np.empty(mu3.shape, dtype=rho.dtype)  # (N, K, 2) the standardised offsets (u, v)
    omr, zq = np.empty_like(log_n), np.empty_like(log_n)  # (N, K) 1 - rho^2 and Zq
    _bivariate_normal_kernel(xy2, mu3, sigma3, rho2, log_n, uv, omr, zq)
    return log_n.reshape(rho.shape), (xy.shape, sigma3, rho2, uv, omr, zq)


def _bivariate_normal_backward(dlog_n, cache):
    """Backward of _bivariate_normal_forward: (dxy, dmu, dsigma, drho) in the inputs' shapes."""
    xy_shape, sigma, rho, uv, omr, zq = cache  # (N, K, 2), (N, K), (N, K, 2), (N, K), (N, K)
    N, K = rho.shape
    dxy = np.empty((N, 2), dtype=rho.dtype)
    dmu, dsigma, drho = np.empty_like(sigma), np.empty_like(sigma), np.empty_like(rho)
    g = np.ascontiguousarray(dlog_n, dtype=rho.dtype).reshape(N, K)  # (N, K)
    _bivariate_normal_backward_kernel(g, sigma, rho, uv, omr, zq, dxy, dmu, dsigma, drho)
    lead = xy_shape[:-1]
    return (dxy.reshape(xy_shape), dmu.reshape(lead + (K, 2)), dsigma.reshape(lead + (K, 2)),
            drho.reshape(lead + (K,)))


@kernel
def _bivariate_normal_kernel(xy, mu, sigma, rho, log_n, uv, omr, zq):
    """log_n[n, k] = log N2(xy[n]; mu[n, k], sigma[n, k], rho[n, k]) (docs/equations.md, "Pen-stroke output").

    Also writes what the backward needs: uv (N, K, 2) = (u, v), omr = 1 - rho^2 and zq (N, K).
    """
    one, two, two_pi = xy.dtype.type(1.0), xy.dtype.type(2.0), xy.dtype.type(_TWO_PI)
    for n in range(rho.shape[0]):
        for k in range(rho.shape[1]):
            s1, s2, r = sigma[n, k, 0], sigma[n, k, 1], rho[n, k]
            u = (xy[n, 0] - mu[n, k, 0]) / s1
            v = (xy[n, 1] - mu[n, k, 1]) / s2
            c = (one - r) * (one + r)  # 1 - rho^2, without cancellation as |rho| -> 1
            q = u * u + v * v - two * r * u * v  # Zq
            log_n[n, k] = -np.log(two_pi * s1 * s2 * np.sqrt(c)) - q / (two * c)
            uv[n, k, 0], uv[n, k, 1], omr[n, k], zq[n, k] = u, v, c, q


@kernel
def _bivariate_normal_backward_kernel(dlog_n, sigma, rho, uv, omr, zq, dxy, dmu, dsigma, drho):
    """The forward kernel's lines in reverse; xy is shared by the K components, so dxy sums over k."""
    zero, half, two = rho.dtype.type(0.0), rho.dtype.type(0.5), rho.dtype.type(2.0)
    for n in range(rho.shape[0]):
        dxy[n, 0], dxy[n, 1] = zero, zero
        for k in range(rho.shape[1]):
            s1, s2, r = sigma[n, k, 0], sigma[n, k, 1], rho[n, k]
            u, v, c, q, g = uv[n, k, 0], uv[n, k, 1], omr[n, k], zq[n, k], dlog_n[n, k]
            # log_n = -log(2 pi s1 s2 sqrt(c)) - q / (2 c)
            ds1, ds2 = -g / s1, -g / s2
            dc = g * (-half / c + q / (two * c * c))
            dq = -g / (two * c)
            # q = u^2 + v^2 - 2 r u v
            du = dq * two * (u - r * v)
            dv = dq * two * (v - r * u)
            dr = -dq * two * u * v
            # c = (1 - r)(1 + r) = 1 - r^2
            dr += dc * (-two * r)
            # v = (xy[n, 1] - mu[n, k, 1]) / s2 and u likewise
            dxy[n, 1] += dv / s2
            dmu[n, k, 1] = -dv / s2
            dsigma[n, k, 1] = ds2 - dv * v / s2
            dxy[n, 0] += du / s1
            dmu[n, k, 0] = -du / s1
            dsigma[n, k, 0] = ds1 - du * u / s1
            drho[n, k] = dr
