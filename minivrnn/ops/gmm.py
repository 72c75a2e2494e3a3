"""The Gaussian-mixture log-density, the output of VRNN-GMM and RNN-GMM (eqs. (5) and (2)):

    log p(x) = logsumexp_k [ log pi_k + log N(x; mu_k, sigma_k) ],   log pi = log_softmax(logits)

(docs/equations.md, "Closed forms"), composed from activations.py and gaussian.py.
"""
import numpy as np

from ..validate import check_arrays, check_like
from .activations import log_softmax_backward, log_softmax_forward, logsumexp_backward, logsumexp_forward
from .gaussian import gaussian_logpdf_backward, gaussian_logpdf_forward


def gmm_logpdf_forward(x, logits, mu, sigma):
    """log p(x) of a K-component diagonal mixture, "Closed forms": x (..., D), logits (..., K), mu and sigma
    (..., K, D); returns (logp (...), cache)."""
    check_arrays(x=(x, "... D"), logits=(logits, "... K"), mu=(mu, "... K D"), sigma=(sigma, "... K D"))
    log_pi, pi_cache = log_softmax_forward(logits)  # (..., K) log mixture weights
    x_k = np.broadcast_to(x[..., None, :], mu.shape)  # (..., K, D): every component sees the same x
    log_n, n_cache = gaussian_logpdf_forward(x_k, mu, sigma)  # (..., K) log N(x; mu_k, sigma_k)
    a = log_pi + log_n  # (..., K) log of pi_k N_k
    logp, lse_cache = logsumexp_forward(a)  # (...)
    return logp, (pi_cache, n_cache, lse_cache)


def gmm_logpdf_backward(dlogp, cache):
    """Backward of gmm_logpdf_forward, its steps in reverse: returns (dx, dlogits, dmu, dsigma)."""
    pi_cache, n_cache, lse_cache = cache
    logp = lse_cache[1]
    check_like("dlogp", dlogp, logp.shape, logp.dtype, "...")
    # logp = logsumexp_k a_k: da_k = dlogp * the responsibility of component k
    da = logsumexp_backward(dlogp, lse_cache)  # (..., K)
    # a = log_pi + log_n passes da to both terms
    dlogits = log_softmax_backward(da, pi_cache)  # (..., K)
    dx_k, dmu, dsigma = gaussian_logpdf_backward(da, n_cache)  # (..., K, D) each
    # x_k = x broadcast to every component
    dx = dx_k.sum(axis=-2)  # (..., D)
    return dx, dlogits, dmu, dsigma
