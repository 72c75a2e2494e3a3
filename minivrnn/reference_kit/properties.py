"""Checks for another VRNN implementation, as plain functions that take its callables.

Each ``check_*`` feeds float64 NumPy arrays to the callable, converts what comes back with ``np.asarray``,
compares it with an independent reference (``scipy.stats``, ``scipy.integrate``, the closed forms of
docs/equations.md, or the golden vectors) and raises ``AssertionError`` with a message naming the
quantity, the worst element and the tolerance. On success each returns the worst relative error it saw.
``rtol`` defaults to 1e-9 (float64); pass e.g. 1e-5 for a float32 implementation.

The equation numbers are the paper's (Chung et al. 2015), as in docs/equations.md.
"""
import json
from itertools import permutations

import numpy as np
from scipy import integrate, stats
from scipy.special import expit, log_softmax, logsumexp

RHO_EDGE = float(np.tanh(8.0))  # the largest |rho| minivrnn's pen output produces (tanh of a clipped to 8)


# --- comparing -----------------------------------------------------------------------------------------

def _as_array(what, value, shape):
    got = np.asarray(value, dtype=np.float64)
    if got.shape != tuple(shape):
        raise AssertionError(f"{what}: expected shape {tuple(shape)}, got {got.shape}")
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{what}: {np.count_nonzero(~np.isfinite(got))} values are NaN or infinite")
    return got


def _assert_values(what, got, want, rtol):
    """Element by element: |got - want| <= rtol * (1 + |want|) (right for log-densities and KLs)."""
    got = _as_array(what, got, np.shape(want))
    err = np.abs(got - want) / (1 + np.abs(want))
    if err.size and not err.max() <= rtol:
        raise AssertionError(f"{what}: {np.count_nonzero(~(err <= rtol))} of {err.size} values are off; "
                             f"{_worst(got, want, err)} (error {err.max():.2e} > rtol {rtol:.0e})")
    return float(err.max(initial=0))


def _assert_array(what, got, want, rtol):
    """The whole array: max |got - want| <= rtol * max |want| (right for gradients, whose entries may be ~0)."""
    want = np.asarray(want, dtype=np.float64)
    got = _as_array(what, got, want.shape)
    scale = np.abs(want).max(initial=0)
    diff = np.abs(got - want)
    err = float(diff.max(initial=0) / scale) if scale > 0 else float(diff.max(initial=0))
    if not err <= rtol:
        raise AssertionError(f"{what}: off by {err:.2e} relative to its largest value {scale:.3e} "
                             f"(rtol {rtol:.0e}); {_worst(got, want, diff)}")
    return err


def _worst(got, want, err):
    """Describes the element where ``err`` is largest."""
    i = np.unravel_index(np.argmax(err), err.shape)
    return (f"the worst, at index {tuple(int(k) for k in i)}, is {float(got[i])!r} "
            f"where {float(want[i])!r} is expected")


# --- densities and the KL ------------------------------------------------------------------------------

def _gaussian_cases(rng):
    """(x, mu, sigma) triples: random shapes, then extremes (the smallest sigma far from x, a huge sigma)."""
    cases = []
    for lead, D in [((), 1), ((5,), 3), ((2, 3), 4)]:
        mu = rng.normal(size=lead + (D,)) * 2
        sigma = np.exp(rng.uniform(-3, 2, size=lead + (D,)))
        cases.append((mu + sigma * rng.normal(size=lead + (D,)) * 2, mu, sigma))
    cases.append((np.array([[1e3, -1e3], [0.0, 5.0]]), np.zeros((2, 2)), np.array([[1e-3, 1e-3], [1e3, 1e-3]])))
    return cases


def check_gaussian_logpdf(fn, rtol=1e-9):
    """``fn(x, mu, sigma)``: log N(x; mu, diag(sigma^2)) summed over the last axis, (..., D) -> (...).

    The output density of eqs. (2) and (5), against scipy.stats.norm."""
    worst = 0.0
    for i, (x, mu, sigma) in enumerate(_gaussian_cases(np.random.default_rng(0))):
        want = stats.norm.logpdf(x, mu, sigma).sum(-1)
        worst = max(worst, _assert_values(f"gaussian logpdf, case {i}", fn(x, mu, sigma), want, rtol))
    return worst


def _kl_textbook(mu_q, s_q, mu_p, s_p):
    """sum_d [log(s_p/s_q) + (s_q^2 + (mu_q - mu_p)^2) / (2 s_p^2) - 1/2] (docs/equations.md, "Closed forms")."""
    return (np.log(s_p / s_q) + (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2) - 0.5).sum(-1)


def _kl_by_quadrature(mu_q, s_q, mu_p, s_p):
    """KL(q || p) = integral of q(z) (log q(z) - log p(z)) dz for one dimension, numerically."""
    def integrand(z):
        log_q, log_p = stats.norm.logpdf(z, mu_q, s_q), stats.norm.logpdf(z, mu_p, s_p)
        return np.exp(log_q) * (log_q - log_p)
    return integrate.quad(integrand, mu_q - 12 * s_q, mu_q + 12 * s_q, epsabs=1e-13, epsrel=1e-12, limit=200)[0]


def check_kl(kl_fn, rtol=1e-9):
    """``kl_fn(mu_q, sigma_q, mu_p, sigma_p)``: KL(q || p) of diagonal Gaussians summed over the last axis.

    The KL term of eq. (10): against numerical integration (which also fixes the argument order), the
    textbook closed form, KL >= 0, and KL = 0 when q equals p."""
    worst = 0.0
    for mu_q, s_q, mu_p, s_p in [(0.3, 0.5, -1.0, 2.0), (2.0, 3.0, 0.0, 1.0), (0.0, 0.05, 0.1, 0.07)]:
        want = _kl_by_quadrature(mu_q, s_q, mu_p, s_p)
        got = kl_fn(*(np.array([v]) for v in (mu_q, s_q, mu_p, s_p)))
        worst = max(worst, _assert_values(f"KL(N({mu_q}, {s_q}^2) || N({mu_p}, {s_p}^2))", got, np.float64(want),
                                          max(rtol, 1e-9)))
    rng = np.random.default_rng(1)
    for lead, Z in [((), 1), ((4,), 3), ((2, 5), 2)]:
        mu_q, mu_p = rng.normal(size=(2,) + lead + (Z,)) * 2
        s_q, s_p = np.exp(rng.uniform(-3, 2, size=(2,) + lead + (Z,)))
        got = kl_fn(mu_q, s_q, mu_p, s_p)
        worst = max(worst, _assert_values(f"KL, random shape {lead + (Z,)}", got,
                                          _kl_textbook(mu_q, s_q, mu_p, s_p), rtol))
        same = _as_array("KL(q || q)", kl_fn(mu_q, s_q, mu_q.copy(), s_q.copy()), lead)
        if np.abs(same).max(initial=0) > rtol:
            raise AssertionError(f"KL(q || q): expected 0, got values up to {np.abs(same).max():.2e}")
        near = _as_array("KL(q || p) with p close to q", kl_fn(mu_q, s_q, mu_q + 1e-5, s_q * (1 + 1e-5)), lead)
        if near.min(initial=0) < -rtol:
            raise AssertionError(f"KL(q || p) with p close to q: expected >= 0, got {near.min():.2e}")
    extreme = [np.array([[0.0, 5.0]]), np.array([[1e-3, 1e3]]), np.array([[1.0, -5.0]]), np.array([[1e3, 1e-3]])]
    worst = max(worst, _assert_values("KL at extreme sigma ratios", kl_fn(*extreme), _kl_textbook(*extreme), rtol))
    return worst


def _gmm_reference(x, logits, mu, sigma):
    """logsumexp_k [log softmax(logits)_k + log N(x; mu_k, sigma_k)] with scipy."""
    log_n = stats.norm.logpdf(x[..., None, :], mu, sigma).sum(-1)  # (..., K)
    return logsumexp(log_softmax(logits, axis=-1) + log_n, axis=-1)


def check_gmm_logpdf(fn, rtol=1e-9):
    """``fn(x, logits, mu, sigma)``: log of a K-component diagonal Gaussian mixture, x (..., D), logits (..., K),
    mu and sigma (..., K, D), weights softmax(logits) -> (...). The VRNN-GMM / RNN-GMM output (eqs. 2, 5).

    Against scipy; K = 1 is the Gaussian; invariant to permuting the components and shifting the logits;
    finite far from every component (where exp of the component densities underflows to 0)."""
    rng = np.random.default_rng(2)
    worst = 0.0
    for lead, K, D in [((), 1, 2), ((4,), 3, 2), ((2, 3), 2, 1), ((3,), 4, 3)]:
        x = rng.normal(size=lead + (D,)) * 2
        logits = rng.normal(size=lead + (K,)) * 2
        mu = rng.normal(size=lead + (K, D)) * 2
        sigma = np.exp(rng.uniform(-2, 1, size=lead + (K, D)))
        got = _as_array(f"GMM logpdf, K={K}", fn(x, logits, mu, sigma), lead)
        worst = max(worst, _assert_values(f"GMM logpdf, K={K}, shape {lead}", got,
                                          _gmm_reference(x, logits, mu, sigma), rtol))
        if K == 1:
            want = stats.norm.logpdf(x, mu[..., 0, :], sigma[..., 0, :]).sum(-1)
            worst = max(worst, _assert_values("GMM with K = 1 against the Gaussian", got, want, rtol))
        for order in list(permutations(range(K)))[1:3]:
            order = list(order)
            permuted = fn(x, logits[..., order], mu[..., order, :], sigma[..., order, :])
            worst = max(worst, _assert_values(f"GMM with components permuted {order}", permuted, got, rtol))
        worst = max(worst, _assert_values("GMM with every logit shifted by 100", fn(x, logits + 100, mu, sigma),
                                          got, rtol))
    x, logits = np.full((2, 2), 1e3), np.array([[0.0, 1.0], [50.0, -50.0]])
    mu, sigma = np.zeros((2, 2, 2)), np.full((2, 2, 2), 1e-2)
    worst = max(worst, _assert_values("GMM far from every component", fn(x, logits, mu, sigma),
                                      _gmm_reference(x, logits, mu, sigma), rtol))
    return worst


def _pen_closed_form(x, logits, mu, sigma, rho, pen_logit):
    """docs/equations.md's N2 and Bernoulli, written out: log sum_k pi_k N2 + e a - log(1 + exp(a))."""
    u = (x[..., None, 0] - mu[..., 0]) / sigma[..., 0]
    v = (x[..., None, 1] - mu[..., 1]) / sigma[..., 1]
    c = (1 - rho) * (1 + rho)  # 1 - rho^2 without cancellation near |rho| = 1
    zq = u * u + v * v - 2 * rho * u * v
    log_n2 = -np.log(2 * np.pi * sigma[..., 0] * sigma[..., 1] * np.sqrt(c)) - zq / (2 * c)
    e = x[..., 2]
    return logsumexp(log_softmax(logits, axis=-1) + log_n2, axis=-1) + e * pen_logit - np.logaddexp(0, pen_logit)


def check_pen_logpdf(fn, rtol=1e-9):
    """``fn(x, logits, mu, sigma, rho, pen_logit)``: the pen-stroke log-likelihood (docs/equations.md,
    "Pen-stroke output"), x = (dx, dy, pen_up) (..., 3), logits and rho (..., K), mu and sigma (..., K, 2),
    pen_logit (...) -> (...): log sum_k pi_k N2((dx, dy); mu_k, sigma_k, rho_k) + log Bernoulli(pen_up).

    Against scipy.stats.multivariate_normal and scipy.stats.bernoulli; invariant to permuting the components;
    finite and right at |rho| = 1 - 1e-6 and at extreme pen logits."""
    rng = np.random.default_rng(3)
    worst = 0.0
    N, K = 6, 3
    x = np.concatenate([rng.normal(size=(N, 2)) * 2, (rng.random((N, 1)) < 0.5)], axis=1)
    logits, rho = rng.normal(size=(N, K)) * 2, rng.uniform(-0.95, 0.95, size=(N, K))
    mu, sigma = rng.normal(size=(N, K, 2)), np.exp(rng.uniform(-1.5, 1, size=(N, K, 2)))
    pen_logit = rng.normal(size=N) * 3
    want = np.empty(N)
    for n in range(N):
        covs = [[[s1 * s1, r * s1 * s2], [r * s1 * s2, s2 * s2]] for (s1, s2), r in zip(sigma[n], rho[n])]
        log_n2 = [stats.multivariate_normal(mu[n, k], covs[k]).logpdf(x[n, :2]) for k in range(K)]
        want[n] = logsumexp(log_softmax(logits[n]) + log_n2) + stats.bernoulli.logpmf(x[n, 2], expit(pen_logit[n]))
    got = _as_array("pen logpdf", fn(x, logits, mu, sigma, rho, pen_logit), (N,))
    worst = max(worst, _assert_values("pen logpdf against scipy", got, want, rtol))
    order = [2, 0, 1]
    permuted = fn(x, logits[:, order], mu[:, order], sigma[:, order], rho[:, order], pen_logit)
    worst = max(worst, _assert_values("pen logpdf with components permuted", permuted, got, rtol))
    # near-degenerate components (|rho| at the edge) on unit scales, so that 1 - rho^2 ~ 2e-6 is the only extreme
    edge = (x, logits, mu / 2, np.ones_like(sigma), np.where(rho > 0, RHO_EDGE, -RHO_EDGE), pen_logit * 20)
    worst = max(worst, _assert_values("pen logpdf at |rho| = 1 - 1e-6 and pen logits up to ~60",
                                      fn(*edge), _pen_closed_form(*edge), rtol))
    return worst


# --- the whole model: golden vectors ----------------------------------------------------------------------

def load_golden(path):
    """A golden file as a dict (its format is documented in reference_kit/README.md)."""
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    group = lambda prefix: {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}
    return {"config": json.loads(data["config"].item()), "params": group("params/"), "grads": group("grads/"),
            "x": data["x"], "mask": data["mask"], "eps": data.get("eps"), "loss": float(data["loss"]),
            "nll": data["nll"], "kl": data["kl"],
            "final_state": tuple(data[k] for k in ("final_state/h", "final_state/c") if k in data),
            "noise": group("noise/"), "sample": data["sample"]}


def _loss_result(result):
    """A loss callable may return (loss, grads) or a dict with "loss", "grads" and optionally "nll", "kl"."""
    if isinstance(result, dict):
        return result
    loss, grads = result
    return {"loss": loss, "grads": grads}


def _assert_grads(what, grads, want, rtol):
    missing, extra = sorted(set(want) - set(grads)), sorted(set(grads) - set(want))
    if missing or extra:
        raise AssertionError(f"{what}: gradient names differ from the parameters': missing {missing}, "
                             f"unexpected {extra}")
    return max(_assert_array(f"{what}: gradient of {k}", grads[k], want[k], rtol) for k in want)


def check_loss_against_golden(loss_fn, golden_path, rtol=1e-9):
    """``loss_fn(params, config, x, mask, eps)`` -> (loss, grads) or a dict {"loss", "grads"[, "nll", "kl",
    "final_state"]}.

    ``config`` is a dict of minivrnn.VRNNConfig's fields, ``params`` and ``grads`` are keyed by minivrnn's
    parameter names, ``eps`` is None for the RNN baselines. The loss is the negative ELBO (eq. 10; eq. 2 for
    the baselines) summed over time and data dimensions and averaged over the batch; "nll" and "kl" are the
    per-step terms (T, B), zero on padded steps; "final_state" is (h,) or (h, c) after the last step, each
    (B, H). Everything returned must match the golden file to ``rtol``."""
    g = load_golden(golden_path)
    what = str(golden_path)
    result = _loss_result(loss_fn(g["params"], dict(g["config"]), g["x"].copy(), g["mask"].copy(),
                                  None if g["eps"] is None else g["eps"].copy()))
    worst = _assert_values(f"{what}: loss", result["loss"], np.float64(g["loss"]), rtol)
    for term in ("nll", "kl"):
        if term in result:
            worst = max(worst, _assert_array(f"{what}: per-step {term}", result[term], g[term], rtol))
    for i, want in enumerate(g["final_state"] if "final_state" in result else ()):
        worst = max(worst, _assert_array(f"{what}: final_state[{i}]", result["final_state"][i], want, rtol))
    return max(worst, _assert_grads(what, result["grads"], g["grads"], rtol))


def check_sample_against_golden(sample_fn, golden_path, rtol=1e-9):
    """``sample_fn(params, config, noise)`` -> x (T, B, D): generation (eqs. 4-6; 1-2 for the baselines) from
    explicit noise (layout of minivrnn.sampling.draw_noise, described in reference_kit/README.md)."""
    g = load_golden(golden_path)
    got = sample_fn(g["params"], dict(g["config"]), {k: v.copy() for k, v in g["noise"].items()})
    return _assert_array(f"{golden_path}: sample", got, g["sample"], rtol)


def check_padding(loss_fn, golden_path, rtol=1e-9):
    """Padded steps count for nothing: with the golden file's inputs, (a) other junk on the padded steps
    (x and eps) changes neither the loss nor a gradient, and (b) the batch loss is the mean of each
    sequence's own loss, computed alone on its unpadded steps."""
    g = load_golden(golden_path)
    config, x, mask, eps = dict(g["config"]), g["x"], g["mask"], g["eps"]
    base = _loss_result(loss_fn(g["params"], config, x.copy(), mask.copy(), None if eps is None else eps.copy()))
    pad = mask == 0
    x2, eps2 = x.copy(), None if eps is None else eps.copy()
    x2[pad] = -3.0 * (1 + np.arange(x2[pad].size).reshape(x2[pad].shape) % 5)
    if eps2 is not None:
        eps2[pad] = 4.0
    junk = _loss_result(loss_fn(g["params"], config, x2, mask.copy(), eps2))
    worst = _assert_values("loss with other junk on the padded steps", junk["loss"], np.float64(base["loss"]), rtol)
    worst = max(worst, _assert_grads("with other junk on the padded steps", junk["grads"], base["grads"], rtol))
    alone = []
    for b, n in enumerate(mask.sum(0).astype(int)):
        e = None if eps is None else eps[:n, b:b + 1].copy()
        alone.append(_loss_result(loss_fn(g["params"], config, x[:n, b:b + 1].copy(), mask[:n, b:b + 1].copy(),
                                          e))["loss"])
    return max(worst, _assert_values("batch loss against the mean of each sequence alone",
                                     base["loss"], np.float64(np.mean(alone)), rtol))
