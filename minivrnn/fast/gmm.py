"""The compiled twin of ops/gmm.py: the Gaussian-mixture log-density of VRNN-GMM and RNN-GMM (eqs. (5), (2)).

    log p(x) = logsumexp_k [ log pi_k + log N(x; mu_k, sigma_k) ],   pi = softmax(logits)

(docs/equations.md, "Closed forms"), both log-sum-exps shifted by their maximum. The forward also
keeps the weights pi and the responsibilities r_k = pi_k N_k / p(x), which are all the backward needs.
"""
import numpy as np

from ..validate import check_arrays, check_like
from .jit import kernel
from .activations import logsumexp_row
from .gaussian import gaussian_logpdf_backward, gaussian_row


def gmm_logpdf_forward(x, logits, mu, sigma):
    """log p(x) of a K-component diagonal mixture: x (..., D), logits (..., K), mu and sigma (..., K, D).

    Returns (logp (...), cache).
    """
    check_arrays(x=(x, "... D"), logits=(logits, "... K"), mu=(mu, "... K D"), sigma=(sigma, "... K D"))
    K, D = mu.shape[-2:]
    logp = np.empty(x.shape[:-1], dtype=x.dtype)  # (...)
    w = np.empty(logits.shape, dtype=x.dtype)  # (..., K) mixture weights pi
    r = np.empty(logits.shape, dtype=x.dtype)  # (..., K) responsibilities
    _gmm_logpdf_kernel(
        np.ascontiguousarray(x).reshape(-1, D),  # (N, D)
        np.ascontiguousarray(logits).reshape(-1, K),  # (N, K)
        np.ascontiguousarray(mu).reshape(-1, K, D),  # (N, K, D)
        np.ascontiguousarray(sigma).reshape(-1, K, D),  # (N, K, D)
        logp.reshape(-1),  # (N,)
        w.reshape(-1, K),  # (N, K)
        r.reshape(-1, K),  # (N, K)
    )
    return logp, (x, mu, sigma, w, r)


def gmm_logpdf_backward(dlogp, cache):
    """Backward of gmm_logpdf_forward, its steps in reverse: returns (dx, dlogits, dmu, dsigma)."""
    x, mu, sigma, w, r = cache
    check_like("dlogp", dlogp, x.shape[:-1], x.dtype, "...")
    # logp = logsumexp_k a_k: d logp / d a_k = softmax(a)_k = r_k
    da = dlogp[..., None] * r  # (..., K)
    # a_k = log pi_k + log N_k
    dlog_pi, dlog_n = da, da
    # log pi = logits - logsumexp(logits)
    dlogits = dlog_pi - w * dlog_pi.sum(axis=-1, keepdims=True)  # (..., K)
    # log N_k = log N(x; mu_k, sigma_k), one Gaussian per component sharing x
    dx_k, dmu, dsigma = gaussian_logpdf_backward(dlog_n, (x[..., None, :], mu, sigma))  # (..., K, D)
    dx = dx_k.sum(axis=-2)  # (..., D)
    return dx, dlogits, dmu, dsigma


@kernel
def _gmm_logpdf_kernel(x, logits, mu, sigma, logp, w, r):
    """Row by row: a_k = log pi_k + log N(x; mu_k, sigma_k), logp = logsumexp(a), r = exp(a - logp).

    Shapes: x (N, D), logits (N, K), mu and sigma (N, K, D) -> logp (N,), w (N, K), r (N, K).
    """
    a = np.empty_like(logits[0])  # (K,) scratch for one row
    for n in range(x.shape[0]):
        lse_logits = logsumexp_row(logits[n])
        for k in range(logits.shape[1]):
            log_pi = logits[n, k] - lse_logits
            w[n, k] = np.exp(log_pi)
            a[k] = log_pi + gaussian_row(x[n], mu[n, k], sigma[n, k])
        logp[n] = logsumexp_row(a)
        for k in range(logits.shape[1]):
            r[n, k] = np.exp(a[k] - logp[n])
