"""Solutions to lesson 1's exercises (try them first: ``lessons/exercises/lesson01.py`` checks your answers).

Both follow docs/equations.md, "Closed forms"; minivrnn's own versions are ``minivrnn/ops/gaussian.py`` and
``minivrnn/ops/gmm.py`` (with ``minivrnn/ops/activations.py``).
"""
import numpy as np

LOG_2PI = np.log(2 * np.pi)


def gaussian_backward(dlogp, x, mu, sigma):
    """Backward of log N(x; mu, diag(sigma^2)) = -0.5 sum_d [log 2 pi + 2 log sigma_d + u_d^2],
    u = (x - mu) / sigma: x, mu, sigma (N, D), dlogp (N,) -> (dx, dmu, dsigma), each (N, D)."""
    u = (x - mu) / sigma
    g = dlogp[:, None]  # every d of a row receives that row's upstream gradient
    dx = -g * u / sigma  # d(-u^2 / 2)/du = -u, du/dx = 1 / sigma
    dmu = -dx  # du/dmu = -1 / sigma
    dsigma = g * (u * u - 1) / sigma  # -1/sigma from -log sigma, +u^2/sigma from -u^2/2 (du/dsigma = -u/sigma)
    return dx, dmu, dsigma


def _log_terms(x, logits, mu, sigma):
    """a_k = log pi_k + log N(x; mu_k, sigma_k), (N, K), and the pieces the backward reuses."""
    m = logits.max(axis=1, keepdims=True)
    log_pi = logits - (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))  # log_softmax, shifted
    u = (x[:, None, :] - mu) / sigma  # (N, K, D)
    log_n = -0.5 * (LOG_2PI + 2 * np.log(sigma) + u * u).sum(axis=2)  # (N, K)
    return log_pi + log_n, log_pi


def gmm_forward(x, logits, mu, sigma):
    """log p(x) = logsumexp_k a_k with the max shift: x (N, D), logits (N, K), mu and sigma (N, K, D) -> (N,)."""
    a, _ = _log_terms(x, logits, mu, sigma)
    m = a.max(axis=1, keepdims=True)  # the largest term becomes exp(0) = 1: no overflow, no log(0)
    return (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]


def gmm_backward(dlogp, x, logits, mu, sigma):
    """Backward of gmm_forward: (dx (N, D), dlogits (N, K), dmu (N, K, D), dsigma (N, K, D))."""
    a, log_pi = _log_terms(x, logits, mu, sigma)
    logp = gmm_forward(x, logits, mu, sigma)
    da = dlogp[:, None] * np.exp(a - logp[:, None])  # d logsumexp / d a_k = the responsibility of k, (N, K)
    # a_k = log_pi_k + log_n_k: da reaches both. log_softmax: dlogits = da - softmax * sum_k da_k
    dlogits = da - np.exp(log_pi) * da.sum(axis=1, keepdims=True)
    # log_n_k is exercise 1's Gaussian, one per component, with upstream gradient da_k
    N, K, D = mu.shape
    x_k = np.broadcast_to(x[:, None, :], mu.shape).reshape(N * K, D)
    dx_k, dmu, dsigma = gaussian_backward(da.reshape(N * K), x_k, mu.reshape(N * K, D), sigma.reshape(N * K, D))
    dx = dx_k.reshape(N, K, D).sum(axis=1)  # x was shared by the K components
    return dx, dlogits, dmu.reshape(N, K, D), dsigma.reshape(N, K, D)
