"""Lesson 4's checkers: the importance-sampled estimate from log weights, and two bug hunts (a KL with its
arguments swapped, one noise draw reused at every time step).

Each ``check_*`` runs the reader's function on a tiny VRNN of its own (fixed seeds, float64), compares what it
returns with minivrnn and with a check that shares no code with it (a Monte Carlo average, the statistics of
the noise), prints a verdict, and returns True or False. It never raises on a wrong or unfinished answer.
"""
import numpy as np
from scipy import stats
from scipy.special import logsumexp

from minivrnn import VRNNConfig, init_params
from minivrnn.evaluation import log_weight
from minivrnn.model import forward
from minivrnn.ops.kl import kl_gaussian_forward
from minivrnn.readable import vrnn_step_forward

from .common import attempt, compare, run_check


# --- a tiny VRNN for the checks ----------------------------------------------------------------------------

def tiny_model(z_dim=3, seed=0):
    """A small VRNN-Gauss (D = 2, H = 5, F = 6) whose posterior and prior differ clearly: the encoder's
    standard deviations are widened and the prior's means shifted, so that KL(q || p) and KL(p || q) are far
    apart (for nearly equal Gaussians they agree to second order, and a check could not tell them apart)."""
    config = VRNNConfig(x_dim=2, z_dim=z_dim, h_dim=5, feat_dim=6, model="vrnn-gauss")
    params = init_params(config, seed=seed, dtype=np.float64)
    params["enc.sigma.b"] = params["enc.sigma.b"] + 1.0  # sigma_q about 1.3 instead of 0.7
    params["prior.mu.b"] = params["prior.mu.b"] + 0.8
    return config, params


def ragged_batch(config, T, lengths, seed):
    """x (T, B, D), mask (T, B) for sequences of the given lengths, and eps (T, B, Z)."""
    rng = np.random.default_rng(seed)
    B = len(lengths)
    x = rng.normal(size=(T, B, config.x_dim))
    mask = (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.float64)
    x = x * mask[:, :, None]  # padding is zeros, as pad_batch makes it
    return x, mask, rng.standard_normal((T, B, config.z_dim))


def _as_array(name, value, shape):
    """'' if value is a finite float array of the given shape, else a line saying what it is."""
    try:
        value = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return f"{name}: expected a float array of shape {shape}, got {type(value).__name__}"
    if value.shape != tuple(shape):
        return f"{name}: shape {value.shape}, expected {tuple(shape)}"
    if not np.all(np.isfinite(value)):
        return f"{name}: holds NaN or Inf"
    return ""


# --- exercise: the estimate and the effective sample size from log weights ---------------------------------

def reference_importance_estimate(log_w):
    """log (1/S) sum_s w_s and the effective sample size 1 / sum_s wbar_s^2 along the last axis."""
    log_w = np.asarray(log_w, dtype=np.float64)
    log_sum = logsumexp(log_w, axis=-1)
    wbar = np.exp(log_w - log_sum[..., None])  # normalised weights
    return log_sum - np.log(log_w.shape[-1]), 1.0 / (wbar**2).sum(axis=-1)


def check_importance_estimate(importance_estimate):
    """``importance_estimate(log_w)``, log_w (..., S) -> (estimate (...), ess (...)): the log of the mean
    weight, and the effective sample size of the normalised weights."""

    def body():
        rng = np.random.default_rng(4)
        cases = [
            ("one sequence, S = 5, log w near -3000 nats", np.array([-3002.0, -2999.5, -3004.0, -3000.2, -3010.0])),
            ("S = 1", np.array([-812.25])),
            ("four equal weights", np.full(4, -57.0)),
            ("a batch of 3 sequences, S = 50", rng.normal(-2000.0, 30.0, size=(3, 50))),
        ]
        problems = []
        for label, log_w in cases:
            out, error = attempt(importance_estimate, log_w.copy())
            if error:
                problems.append(f"{label}: {error}")
                continue
            if not (isinstance(out, tuple) and len(out) == 2):
                problems.append(f"{label}: expected a pair (estimate, ess), got {type(out).__name__}")
                continue
            est, ess = (np.asarray(v, dtype=np.float64) for v in out)
            want_est, want_ess = reference_importance_estimate(log_w)
            S = log_w.shape[-1]
            problem = compare("estimate", est, want_est, rtol=1e-9, atol=1e-9)
            if problem and est.shape == want_est.shape:
                gap = float(np.max(est - want_est)) if np.all(np.isfinite(est)) else None
                if not np.all(np.isfinite(est)):
                    problem += ("; exp(log w) underflows to 0 for log weights thousands of nats below zero: "
                                "subtract the largest log w before exp, add it back after the log")
                elif S > 1 and np.allclose(est - want_est, np.log(S), atol=1e-6):
                    problem += f" (too high by log S = {np.log(S):.4g}: divide the sum of the weights by S)"
                elif S > 1 and np.allclose(est, np.mean(log_w, axis=-1), atol=1e-6):
                    problem += " (that is the mean of log w, the ELBO's estimate: the log of the mean weight is wanted)"
                elif S > 1 and np.allclose(est, np.max(log_w, axis=-1), atol=1e-6):
                    problem += " (that is the largest log w: the mean of the weights adds the others and divides by S)"
                elif gap is not None:
                    problem += f" (largest difference {gap:+.4g} nats)"
            problems.append(f"{label}: {problem}" if problem else "")
            problem = compare("ess", ess, want_ess, rtol=1e-9, atol=1e-9)
            if problem and ess.shape == want_ess.shape and np.all(np.isfinite(ess)):
                if np.allclose(ess, 1.0 / want_ess, atol=1e-9):
                    problem += " (that is the sum of the squared normalised weights: the ESS is its reciprocal)"
                elif np.any(ess < 1 - 1e-9) or np.any(ess > S + 1e-9):
                    problem += f" (the ESS lies between 1 and S = {S}: normalise the weights to sum to 1 first)"
            problems.append(f"{label}: {problem}" if problem else "")
        return problems

    return run_check("importance_estimate", body)


# --- bug hunt: the KL with its arguments swapped ------------------------------------------------------------

def _kl_monte_carlo(q_mu, q_sigma, p_mu, p_sigma, n, rng):
    """E_{z ~ q}[log q(z) - log p(z)] by Monte Carlo, summed over the last axis: (mean, standard error)."""
    z = q_mu + q_sigma * rng.standard_normal((n,) + q_mu.shape)
    ratio = (stats.norm.logpdf(z, q_mu, q_sigma) - stats.norm.logpdf(z, p_mu, p_sigma)).sum(axis=-1)
    return ratio.mean(axis=0), ratio.std(axis=0) / np.sqrt(n)


def check_elbo_terms(elbo_terms):
    """``elbo_terms(params, config, x, mask, eps)`` -> (rec, kl), (B,) each: the reconstruction term
    sum_t log p(x_t | z_<=t, x_<t) and the KL term sum_t KL(q(z_t | ...) || p(z_t | ...)) of eq. (10)."""

    def body():
        config, params = tiny_model()
        x, mask, eps = ragged_batch(config, T=6, lengths=[6, 4, 2], seed=5)
        B = mask.shape[1]
        out, error = attempt(elbo_terms, params, config, x.copy(), mask.copy(), eps.copy())
        if error:
            return [error]
        if not (isinstance(out, tuple) and len(out) == 2):
            return [f"expected a pair (rec, kl), got {type(out).__name__}"]
        problems = [_as_array("rec", out[0], (B,)), _as_array("kl", out[1], (B,))]
        if any(problems):
            return problems
        rec, kl = (np.asarray(v, dtype=np.float64) for v in out)
        result, _ = forward(params, config, x, mask, eps)
        want_rec, want_kl = -result["nll"].sum(axis=0), result["kl"].sum(axis=0)
        problems.append(compare("rec", rec, want_rec))
        problem = compare("kl", kl, want_kl)
        if problem:
            q = (result["q_mu"], result["q_sigma"])
            p = (result["p_mu"], result["p_sigma"])
            swapped = (kl_gaussian_forward(*p, *q)[0] * mask).sum(axis=0)
            unmasked = kl_gaussian_forward(*q, *p)[0].sum(axis=0)
            mc, se = _kl_monte_carlo(*q, *p, 4000, np.random.default_rng(6))  # (T, B) per step
            mc, se = (mc * mask).sum(axis=0), np.sqrt((se**2 * mask).sum(axis=0))
            b = int(np.argmax(np.abs(kl - want_kl)))  # the sequence where yours is furthest off
            problem += (f". The definition, KL(q || p) = E_q[log q(z) - log p(z)], estimated by Monte Carlo "
                        f"(4000 draws from q) gives {mc[b]:.3f} ± {se[b]:.3f} nats for sequence {b}; yours is "
                        f"{kl[b]:.3f} ({(kl[b] - mc[b]) / se[b]:+.0f} standard errors)")
            if np.allclose(kl, swapped, rtol=1e-9, atol=1e-9):
                problem += (". Yours equals KL(p || q), the prior's expectation of log p - log q: the KL of eq. "
                            "(10) has the posterior q (mu_z, sigma_z, eq. (8)) first and the prior p "
                            "(mu_0, sigma_0, eq. (4)) second, and the two orders differ")
            elif np.allclose(kl, unmasked, rtol=1e-9, atol=1e-9):
                problem += ". Yours also counts the padded steps (mask 0): multiply each step's KL by the mask"
        problems.append(problem)
        return problems

    return run_check("elbo_terms", body)


# --- bug hunt: the noise of every step ----------------------------------------------------------------------

def recover_noise(params, config, x, mask, z):
    """The eps behind a draw z (T, B, Z) of q: step by step, eps_t = (z_t - mu_z,t) / sigma_z,t, where
    mu_z,t and sigma_z,t come from the state that z_<t made (eq. (9)). Returns eps (T, B, Z)."""
    T, B = mask.shape
    state = (np.zeros((B, config.h_dim)),)
    eps = np.zeros((T, B, config.z_dim))
    for t in range(T):
        _, out, _ = vrnn_step_forward(params, config, x[t], mask[t], np.zeros((B, config.z_dim)), state)
        eps[t] = (z[t] - out["q_mu"]) / out["q_sigma"]  # the encoder's Gaussian does not depend on eps_t
        state, _, _ = vrnn_step_forward(params, config, x[t], mask[t], eps[t], state)
    return eps


def noise_statistics(eps):
    """Mean, standard deviation, and the correlation of eps_t with eps_{t+1} over all steps, sequences and
    dimensions: for independent N(0, 1) draws 0, 1 and 0 up to sampling error."""
    flat = eps.ravel()
    a, b = eps[:-1].ravel(), eps[1:].ravel()
    return flat.mean(), flat.std(), float(np.corrcoef(a, b)[0, 1])


def check_sample_posterior(sample_posterior):
    """``sample_posterior(params, config, x, mask, rng)`` -> (z, log_w): one draw z_<=T ~ q (T, B, Z), made step
    by step as eq. (9) says, and its log weight log p(x, z) - log q(z | x) per sequence (B,)."""

    def body():
        config, params = tiny_model()
        T, lengths = 40, [40, 40, 25, 10]
        x, mask, _ = ragged_batch(config, T, lengths, seed=7)
        B, Z = len(lengths), config.z_dim
        out, error = attempt(sample_posterior, params, config, x.copy(), mask.copy(), np.random.default_rng(8))
        if error:
            return [error]
        if not (isinstance(out, tuple) and len(out) == 2):
            return [f"expected a pair (z, log_w), got {type(out).__name__}"]
        problems = [_as_array("z", out[0], (T, B, Z)), _as_array("log_w", out[1], (B,))]
        if any(problems):
            return problems
        z, log_w = (np.asarray(v, dtype=np.float64) for v in out)
        again, _ = attempt(sample_posterior, params, config, x.copy(), mask.copy(), np.random.default_rng(8))
        other, _ = attempt(sample_posterior, params, config, x.copy(), mask.copy(), np.random.default_rng(9))
        if again is None or not np.array_equal(np.asarray(again[0]), z):
            problems.append("two calls with the same rng seed gave different z: draw the noise from the rng passed in")
        elif other is not None and np.array_equal(np.asarray(other[0]), z):
            problems.append("calls with different rng seeds gave the same z: draw the noise from the rng passed in")
        eps = recover_noise(params, config, x, mask, z)
        mean, sd, corr = noise_statistics(eps)
        n = eps[:-1].size
        band = 5 / np.sqrt(n)  # five standard errors of a correlation of n independent pairs
        same = np.max(np.abs(eps[1:] - eps[:1]))
        if corr > band:
            line = (f"the noise behind your z, eps_t = (z_t - mu_z,t) / sigma_z,t, is correlated from one step to "
                    f"the next: corr(eps_t, eps_t+1) = {corr:.2f}, where independent draws give 0 ± {band / 5:.2f}")
            if same < 1e-9:
                line += (f"; in fact eps_t is the same at all {T} steps. Eq. (9) samples z_t | z_<t afresh at every "
                         f"step: each z_t needs its own eps_t ~ N(0, I)")
            problems.append(line)
        else:
            if abs(mean) > 5 / np.sqrt(eps.size):
                problems.append(f"the noise behind your z has mean {mean:.3f}, where N(0, 1) draws give "
                                f"0 ± {1 / np.sqrt(eps.size):.3f}")
            if abs(sd - 1) > 5 / np.sqrt(2 * eps.size):
                problems.append(f"the noise behind your z has standard deviation {sd:.3f}, where N(0, 1) draws "
                                f"give 1 ± {1 / np.sqrt(2 * eps.size):.3f}: z_t = mu_z,t + sigma_z,t * eps_t")
        result, _ = forward(params, config, x, mask, eps)
        want = log_weight(result, eps, mask)  # the package's log w of the same z
        problem = compare("log_w", log_w, want, rtol=1e-8, atol=1e-8)
        if problem:
            problem += " (log p(x, z) - log q(z | x) of your own z, as minivrnn.evaluation.log_weight computes it)"
        problems.append(problem)
        return problems

    return run_check("sample_posterior", body)
