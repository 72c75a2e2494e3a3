"""Slow, readable float64 references for ops/gaussian.py, ops/gmm.py and ops/kl.py.

Each is the formula of reference/equations.md ("Closed forms") written as directly as NumPy allows.
"""
import numpy as np

from tests.reference.activations import logsumexp


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def gaussian_logpdf(x, mu, sigma):
    """-0.5 * sum_d [log(2 pi) + 2 log sigma_d + ((x_d - mu_d) / sigma_d)^2]."""
    x, mu, sigma = _f64(x, mu, sigma)
    return -0.5 * np.sum(np.log(2 * np.pi) + 2 * np.log(sigma) + ((x - mu) / sigma) ** 2, axis=-1)


def softmax(logits):
    (logits,) = _f64(logits)
    return np.exp(logits - logsumexp(logits)[..., None])


def gmm_joint(x, logits, mu, sigma):
    """a_k = log pi_k + log N(x; mu_k, sigma_k), one per component: (..., K)."""
    (logits,) = _f64(logits)
    log_pi = logits - logsumexp(logits)[..., None]
    return log_pi + gaussian_logpdf(np.asarray(x)[..., None, :], mu, sigma)


def gmm_logpdf(x, logits, mu, sigma):
    """log p(x) = logsumexp_k a_k."""
    return logsumexp(gmm_joint(x, logits, mu, sigma))


def gmm_responsibilities(x, logits, mu, sigma):
    """r_k = pi_k N_k / p(x) = exp(a_k - log p(x))."""
    a = gmm_joint(x, logits, mu, sigma)
    return np.exp(a - logsumexp(a)[..., None])


def kl_gaussian(mu_q, sigma_q, mu_p, sigma_p):
    """sum_d [log(s_p / s_q) + (s_q^2 + (mu_q - mu_p)^2) / (2 s_p^2) - 1/2], the textbook form."""
    mu_q, sigma_q, mu_p, sigma_p = _f64(mu_q, sigma_q, mu_p, sigma_p)
    terms = np.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5
    return terms.sum(axis=-1)
