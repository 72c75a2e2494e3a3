"""Slow, readable references for minivrnn/ops/pen.py: one row and one component at a time, in float64.

The bivariate normal is written with its 2x2 covariance matrix (log-determinant and inverse), a different
route from the kernel's (u, v, Zq) form, and its gradients come from matrix calculus, not from the chain
rule through (u, v, Zq) that the backward kernel follows.
"""
import numpy as np

from tests.reference.activations import logsumexp


def bernoulli_logpmf(e, logit):
    return np.asarray(e, dtype=np.float64) * logit - np.logaddexp(0.0, np.asarray(logit, dtype=np.float64))


def covariance(s1, s2, r):
    return np.array([[s1 * s1, r * s1 * s2], [r * s1 * s2, s2 * s2]])


def bivariate_normal_logpdf(xy, mu, s1, s2, r):
    """log N2 = -log(2 pi) - log det(S) / 2 - d^T S^-1 d / 2 with d = xy - mu."""
    S = covariance(s1, s2, r)
    d = np.asarray(xy, dtype=np.float64) - mu
    return -np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(S)) - 0.5 * d @ np.linalg.solve(S, d)


def _log_terms(xy, logits, mu, sigma, rho):
    """log pi_k + log N2_k for one row: (K,)."""
    log_pi = logits - logsumexp(logits)
    log_n = [bivariate_normal_logpdf(xy, mu[k], sigma[k, 0], sigma[k, 1], rho[k]) for k in range(len(rho))]
    return log_pi + np.array(log_n)


def bivariate_gmm_logpdf(xy, logits, mu, sigma, rho):
    """Row by row: log-sum-exp over k of log pi_k + log N2_k."""
    args = [np.asarray(a, dtype=np.float64) for a in (xy, logits, mu, sigma, rho)]
    lead = args[0].shape[:-1]
    rows = [a.reshape((-1,) + a.shape[len(lead):]) for a in args]
    out = [logsumexp(_log_terms(*row)) for row in zip(*rows)]
    return np.array(out).reshape(lead)


def bivariate_gmm_logpdf_grads(xy, logits, mu, sigma, rho):
    """Gradients of the summed log-density, by matrix calculus; returns (dxy, dlogits, dmu, dsigma, drho).

    Per component, with d = xy - mu_k and P = S_k^-1: d log N2 / d mu = P d, and
    d log N2 / d S = (P d d^T P - P) / 2, chained to (s1, s2, rho) through the entries of S.
    The weight of component k is its responsibility w_k = softmax_k(log pi_k + log N2_k).
    """
    args = [np.asarray(a, dtype=np.float64) for a in (xy, logits, mu, sigma, rho)]
    grads = [np.zeros_like(a) for a in args]
    lead = args[0].shape[:-1]
    for index in np.ndindex(lead):
        x, logit, m, s, r = (a[index] for a in args)
        terms = _log_terms(x, logit, m, s, r)
        w = np.exp(terms - logsumexp(terms))  # (K,) responsibilities
        pi = np.exp(logit - logsumexp(logit))  # (K,) mixture weights
        grads[1][index] = w - pi
        for k in range(len(r)):
            s1, s2 = s[k]
            P = np.linalg.inv(covariance(s1, s2, r[k]))
            Pd = P @ (x - m[k])
            dS = 0.5 * (np.outer(Pd, Pd) - P)  # d log N2 / d S, symmetric
            dS_ds1 = np.array([[2 * s1, r[k] * s2], [r[k] * s2, 0.0]])
            dS_ds2 = np.array([[0.0, r[k] * s1], [r[k] * s1, 2 * s2]])
            dS_drho = np.array([[0.0, s1 * s2], [s1 * s2, 0.0]])
            grads[0][index] += -w[k] * Pd
            grads[2][index][k] = w[k] * Pd
            grads[3][index][k] = w[k] * np.array([np.sum(dS * dS_ds1), np.sum(dS * dS_ds2)])
            grads[4][index][k] = w[k] * np.sum(dS * dS_drho)
    return tuple(grads)
