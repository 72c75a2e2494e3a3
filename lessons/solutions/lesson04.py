"""Solutions to lesson 4's exercise and bug hunts. Try them first: lessons/exercises/lesson04.py's checkers
say what is wrong and where."""
import numpy as np

from minivrnn.model import forward
from minivrnn.ops.gaussian import gaussian_logpdf_forward
from minivrnn.ops.kl import kl_gaussian_forward
from minivrnn.readable import vrnn_step_forward


def importance_estimate(log_w):
    """log (1/S) sum_s w_s and the effective sample size, along the last axis of log_w (..., S).

    The log weights are thousands of nats below zero, so exp(log w) would underflow to 0: shift by the largest
    first (log-sum-exp), then divide by S, i.e. subtract log S. The normalised weights wbar_s = w_s / sum_r w_r
    are exp(log w_s - log sum_r w_r); the ESS is 1 / sum_s wbar_s^2."""
    log_w = np.asarray(log_w, dtype=np.float64)
    m = log_w.max(axis=-1, keepdims=True)  # (..., 1)
    log_sum = m[..., 0] + np.log(np.exp(log_w - m).sum(axis=-1))  # log sum_s w_s, exact
    wbar = np.exp(log_w - log_sum[..., None])  # sums to 1 along the last axis
    return log_sum - np.log(log_w.shape[-1]), 1.0 / (wbar**2).sum(axis=-1)


def elbo_terms(params, config, x, mask, eps):
    """The two terms of eq. (10) per sequence at one draw of z: the fix is the order of the KL's arguments,
    posterior first: KL(q || p) = kl_gaussian_forward(mu_q, sigma_q, mu_p, sigma_p)."""
    result, _ = forward(params, config, x, mask, eps)
    rec = -result["nll"].sum(axis=0)  # nll is already 0 on padded steps
    prior = (result["p_mu"], result["p_sigma"])
    posterior = (result["q_mu"], result["q_sigma"])
    kl_t, _ = kl_gaussian_forward(*posterior, *prior)  # was (*prior, *posterior): KL(p || q)
    return rec, (kl_t * mask).sum(axis=0)


def sample_posterior(params, config, x, mask, rng):
    """One draw z_<=T ~ q and its log weight: the fix is a fresh eps_t at every step (it was drawn once,
    before the loop, and reused at every step)."""
    T, B = mask.shape
    state = (np.zeros((B, config.h_dim)),)
    z, log_w = np.zeros((T, B, config.z_dim)), np.zeros(B)
    for t in range(T):
        eps = rng.standard_normal((B, config.z_dim))  # was drawn once, before the loop
        state, out, _ = vrnn_step_forward(params, config, x[t], mask[t], eps, state)
        z[t] = out["q_mu"] + out["q_sigma"] * eps
        log_p_z = gaussian_logpdf_forward(z[t], out["p_mu"], out["p_sigma"])[0]
        log_q_z = gaussian_logpdf_forward(z[t], out["q_mu"], out["q_sigma"])[0]
        log_w += -out["nll"] + mask[t] * (log_p_z - log_q_z)
    return z, log_w
