"""Checks for another VRNN implementation, as plain functions that take its callables.

Each ``check_*`` feeds float64 NumPy arrays to the callable, converts what comes back with ``np.asarray``,
compares it with an independent reference (``scipy.stats``, ``scipy.integrate``, the closed forms of
docs/equations.md, or the golden vectors) and, on success, returns the worst relative error it saw. On failure
it raises ``CheckFailed`` (an ``AssertionError``, so pytest shows it as a failed assertion) whose message
gives the verdict on its first line (the quantity, the worst error, the tolerance) and a diagnosis below it,
one line per finding: where the error starts (diagnose.py).

``rtol`` defaults to 1e-9 (float64). For a float32 implementation pass ``rtol=FLOAT32_RTOL`` (1e-4) and leave
out ``FLOAT64_ONLY`` (``golden_paths(float32=True)`` does).

The equation numbers are the paper's (Chung et al. 2015), as in docs/equations.md.
"""
import inspect
import json
from itertools import permutations
from pathlib import Path

import numpy as np
from scipy import integrate, stats
from scipy.special import expit, log_softmax, logsumexp

from ..model import VRNNConfig, forward
from . import diagnose
from .diagnose import array_error, loss_result, value_error, worst

RHO_EDGE = float(np.tanh(8.0))  # the largest |rho| minivrnn's pen output produces (tanh of a clipped to 8)
# float32 keeps about 7 significant digits; a loss summed over steps, and gradients summed over steps and
# sequences, lose one or two more, so 1e-4 leaves a margin without letting a real slip through (the slips the
# kit's own tests plant are off by far more, except a gradient off by 1e-8, which only float64 can see).
FLOAT32_RTOL = 1e-4
# Cases float32 cannot pass whatever the implementation: at the clipped correlation, 1 - rho = 1 - tanh(8) is
# 2.3e-7, about float32's spacing below 1, so 1 - rho^2 itself is only a few per cent right there.
FLOAT64_ONLY = ("vrnn-gmm-pen-edges",)


class CheckFailed(AssertionError):
    """A check that did not pass. ``verdict``: what is off, by how much, at which tolerance (one line);
    ``diagnosis``: the findings that say where (lines); ``worst``: the worst relative error seen (inf when
    something could not be compared); ``rtol``."""

    def __init__(self, verdict, worst=float("inf"), rtol=None, diagnosis=()):
        self.verdict, self.worst, self.rtol, self.diagnosis = verdict, worst, rtol, list(diagnosis)
        super().__init__(self._text())

    def _text(self):
        return self.verdict + "".join(f"\n  - {line}" for line in self.diagnosis)

    def add(self, lines):
        self.diagnosis += list(lines)
        self.args = (self._text(),)
        return self


# --- comparing -----------------------------------------------------------------------------------------

def _as_array(what, value, shape):
    try:
        got = np.asarray(value, dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - e.g. a tensor that still requires grad: say so, as a failed check
        raise CheckFailed(f"{what}: cannot be read as a float64 array ({type(e).__name__}: {e}); return NumPy "
                          f"arrays or numbers (for PyTorch: .detach().numpy(), or .item() for the loss)") from None
    if got.shape != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {got.shape}")
    return got


def _assert_values(what, got, want, rtol):
    """Element by element: |got - want| <= rtol * (1 + |want|) (right for log-densities and KLs)."""
    got = _as_array(what, got, np.shape(want))
    if not np.all(np.isfinite(got)):
        raise CheckFailed(f"{what}: {np.count_nonzero(~np.isfinite(got))} values are NaN or infinite", rtol=rtol)
    err = value_error(got, want)
    if err.size and not err.max() <= rtol:
        raise CheckFailed(f"{what}: {np.count_nonzero(~(err <= rtol))} of {err.size} values are off; "
                          f"{_worst(got, want, err)} (error {err.max():.2e} > rtol {rtol:.0e})", float(err.max()), rtol)
    return worst(err)


def _worst(got, want, err):
    """Describes the element where ``err`` is largest."""
    i = np.unravel_index(np.argmax(err), err.shape)
    return (f"the worst, at index {tuple(int(k) for k in i)}, is {float(got[i])!r} "
            f"where {float(want[i])!r} is expected")


def _slips(fn, known):
    """The known slips (name, their output on some inputs, those inputs) that ``fn`` reproduces: a diagnosis
    that names the mistake rather than the symptom."""
    lines = []
    for text, want, args in known:
        try:
            with np.errstate(all="ignore"):
                got = np.asarray(fn(*args), dtype=np.float64)
        except Exception:  # noqa: BLE001 - a hint is best effort; the verdict stands without it
            continue
        if got.shape == np.shape(want) and np.all(value_error(got, want) <= 1e-7):
            lines.append(f"your function computes {text}")
    return lines


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
    cases = _gaussian_cases(np.random.default_rng(0))
    worst_seen = 0.0
    try:
        for i, (x, mu, sigma) in enumerate(cases):
            want = stats.norm.logpdf(x, mu, sigma).sum(-1)
            worst_seen = max(worst_seen, _assert_values(f"gaussian logpdf, case {i}", fn(x, mu, sigma), want, rtol))
    except CheckFailed as e:
        x, mu, sigma = cases[1]
        raise e.add(_slips(fn, [
            ("N(x; mu, sigma) with sigma taken as the variance", stats.norm.logpdf(x, mu, np.sqrt(sigma)).sum(-1),
             (x, mu, sigma)),
            ("-(log 2 pi + log sigma + ((x - mu) / sigma)^2) / 2: the log of the variance is 2 log sigma",
             -0.5 * (np.log(2 * np.pi) + np.log(sigma) + ((x - mu) / sigma) ** 2).sum(-1), (x, mu, sigma)),
            ("the log-density not summed over the last axis", stats.norm.logpdf(x, mu, sigma), (x, mu, sigma))]))
    return worst_seen


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
    rng = np.random.default_rng(1)
    try:
        return _check_kl(kl_fn, rtol, rng)
    except CheckFailed as e:
        slip_rng = np.random.default_rng(11)
        mq, mp = slip_rng.normal(size=(2, 3, 2))
        sq, sp = np.exp(slip_rng.uniform(-1, 1, size=(2, 3, 2)))
        raise e.add(_slips(kl_fn, [
            ("KL(p || q): the arguments are the other way round (q, the encoder's, comes first)",
             _kl_textbook(mp, sp, mq, sq), (mq, sq, mp, sp)),
            ("the closed form without its - 1/2", _kl_textbook(mq, sq, mp, sp) + 0.5 * sq.shape[-1], (mq, sq, mp, sp)),
            ("the KL with sigma taken as the variance", _kl_textbook(mq, np.sqrt(sq), mp, np.sqrt(sp)),
             (mq, sq, mp, sp))]))


def _check_kl(kl_fn, rtol, rng):
    worst_seen = 0.0
    for mu_q, s_q, mu_p, s_p in [(0.3, 0.5, -1.0, 2.0), (2.0, 3.0, 0.0, 1.0), (0.0, 0.05, 0.1, 0.07)]:
        want = _kl_by_quadrature(mu_q, s_q, mu_p, s_p)
        got = kl_fn(*(np.array([v]) for v in (mu_q, s_q, mu_p, s_p)))
        worst_seen = max(worst_seen, _assert_values(f"KL(N({mu_q}, {s_q}^2) || N({mu_p}, {s_p}^2))", got,
                                                    np.float64(want), max(rtol, 1e-9)))
    for lead, Z in [((), 1), ((4,), 3), ((2, 5), 2)]:
        mu_q, mu_p = rng.normal(size=(2,) + lead + (Z,)) * 2
        s_q, s_p = np.exp(rng.uniform(-3, 2, size=(2,) + lead + (Z,)))
        got = kl_fn(mu_q, s_q, mu_p, s_p)
        worst_seen = max(worst_seen, _assert_values(f"KL, random shape {lead + (Z,)}", got,
                                                    _kl_textbook(mu_q, s_q, mu_p, s_p), rtol))
        same = _as_array("KL(q || q)", kl_fn(mu_q, s_q, mu_q.copy(), s_q.copy()), lead)
        if not np.abs(same).max(initial=0) <= rtol:
            raise CheckFailed(f"KL(q || q): expected 0, got values up to {np.abs(same).max():.2e}", rtol=rtol)
        near = _as_array("KL(q || p) with p close to q", kl_fn(mu_q, s_q, mu_q + 1e-5, s_q * (1 + 1e-5)), lead)
        if not near.min(initial=0) >= -rtol:
            raise CheckFailed(f"KL(q || p) with p close to q: expected >= 0, got {near.min():.2e}", rtol=rtol)
    extreme = [np.array([[0.0, 5.0]]), np.array([[1e-3, 1e3]]), np.array([[1.0, -5.0]]), np.array([[1e3, 1e-3]])]
    return max(worst_seen, _assert_values("KL at extreme sigma ratios", kl_fn(*extreme), _kl_textbook(*extreme),
                                          rtol))


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
    worst_seen = 0.0
    far = (np.full((2, 2), 1e3), np.array([[0.0, 1.0], [50.0, -50.0]]), np.zeros((2, 2, 2)), np.full((2, 2, 2), 1e-2))
    try:
        for lead, K, D in [((), 1, 2), ((4,), 3, 2), ((2, 3), 2, 1), ((3,), 4, 3)]:
            x = rng.normal(size=lead + (D,)) * 2
            logits = rng.normal(size=lead + (K,)) * 2
            mu = rng.normal(size=lead + (K, D)) * 2
            sigma = np.exp(rng.uniform(-2, 1, size=lead + (K, D)))
            got = _as_array(f"GMM logpdf, K={K}", fn(x, logits, mu, sigma), lead)
            worst_seen = max(worst_seen, _assert_values(f"GMM logpdf, K={K}, shape {lead}", got,
                                                        _gmm_reference(x, logits, mu, sigma), rtol))
            if K == 1:
                want = stats.norm.logpdf(x, mu[..., 0, :], sigma[..., 0, :]).sum(-1)
                worst_seen = max(worst_seen, _assert_values("GMM with K = 1 against the Gaussian", got, want, rtol))
            for order in list(permutations(range(K)))[1:3]:
                order = list(order)
                permuted = fn(x, logits[..., order], mu[..., order, :], sigma[..., order, :])
                worst_seen = max(worst_seen, _assert_values(f"GMM with components permuted {order}", permuted,
                                                            got, rtol))
            worst_seen = max(worst_seen, _assert_values("GMM with every logit shifted by 100",
                                                        fn(x, logits + 100, mu, sigma), got, rtol))
        return max(worst_seen, _assert_values("GMM far from every component", fn(*far), _gmm_reference(*far), rtol))
    except CheckFailed as e:
        x, logits = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
        mu, sigma = rng.normal(size=(4, 3, 2)), np.exp(rng.uniform(-1, 1, size=(4, 3, 2)))
        log_n = stats.norm.logpdf(x[..., None, :], mu, sigma).sum(-1)
        lines = _slips(fn, [("the mixture with unnormalised weights exp(logits): subtract logsumexp(logits), i.e. "
                             "use log_softmax", logsumexp(logits + log_n, axis=-1), (x, logits, mu, sigma))])
        try:
            with np.errstate(all="ignore"):
                far_ok = np.all(np.isfinite(np.asarray(fn(*far), dtype=np.float64)))
        except Exception:  # noqa: BLE001 - a hint is best effort
            far_ok = True
        if not far_ok:
            lines.append("far from every component your log-density is not finite: exp of log-densities thousands "
                         "of nats below 0 underflows to 0; a log-sum-exp must subtract the largest term first "
                         "(docs/equations.md, 'Closed forms')")
        raise e.add(lines)


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
    N, K = 6, 3
    x = np.concatenate([rng.normal(size=(N, 2)) * 2, (rng.random((N, 1)) < 0.5)], axis=1)
    logits, rho = rng.normal(size=(N, K)) * 2, rng.uniform(-0.95, 0.95, size=(N, K))
    mu, sigma = rng.normal(size=(N, K, 2)), np.exp(rng.uniform(-1.5, 1, size=(N, K, 2)))
    pen_logit = rng.normal(size=N) * 3
    args = (x, logits, mu, sigma, rho, pen_logit)
    try:
        want = np.empty(N)
        for n in range(N):
            covs = [[[s1 * s1, r * s1 * s2], [r * s1 * s2, s2 * s2]] for (s1, s2), r in zip(sigma[n], rho[n])]
            log_n2 = [stats.multivariate_normal(mu[n, k], covs[k]).logpdf(x[n, :2]) for k in range(K)]
            want[n] = logsumexp(log_softmax(logits[n]) + log_n2) + stats.bernoulli.logpmf(x[n, 2],
                                                                                         expit(pen_logit[n]))
        got = _as_array("pen logpdf", fn(*args), (N,))
        worst_seen = _assert_values("pen logpdf against scipy", got, want, rtol)
        order = [2, 0, 1]
        permuted = fn(x, logits[:, order], mu[:, order], sigma[:, order], rho[:, order], pen_logit)
        worst_seen = max(worst_seen, _assert_values("pen logpdf with components permuted", permuted, got, rtol))
        # near-degenerate components (|rho| at the edge) on unit scales, so that 1 - rho^2 ~ 2e-6 is the only extreme
        edge = (x, logits, mu / 2, np.ones_like(sigma), np.where(rho > 0, RHO_EDGE, -RHO_EDGE), pen_logit * 20)
        return max(worst_seen, _assert_values("pen logpdf at |rho| = 1 - 1e-6 and pen logits up to ~60",
                                              fn(*edge), _pen_closed_form(*edge), rtol))
    except CheckFailed as e:
        raise e.add(_slips(fn, [
            ("N2 with the correlation's sign flipped (rho multiplies u v with a minus: Zq = u^2 + v^2 - 2 rho u v)",
             _pen_closed_form(x, logits, mu, sigma, -rho, pen_logit), args),
            ("the pen bit's Bernoulli with its sign flipped: log p(pen_up = e) = e a - softplus(a), with a = dec.pen",
             _pen_closed_form(x, logits, mu, sigma, rho, -pen_logit), args)]))


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


def takes_state0(fn):
    """Whether ``fn`` accepts a ``state0`` keyword (the initial state, for ``check_chunks``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "state0" or p.kind is p.VAR_KEYWORD for p in parameters)


def _answer(loss_fn, g, x, mask, eps, where, **keywords):
    """Calls ``loss_fn`` on copies (so that it cannot spoil the golden arrays) and checks the form of its answer:
    a float loss, every gradient by name and shape, and the optional per-step terms and final state. Values
    that are NaN or infinite are let through, to be compared (and located) like any wrong value."""
    params = {k: v.copy() for k, v in g["params"].items()}
    result = loss_fn(params, dict(g["config"]), x.copy(), mask.copy(), None if eps is None else eps.copy(),
                     **keywords)
    try:
        result = loss_result(result)
    except (TypeError, ValueError):
        raise CheckFailed(f"{where}: your function returned a {type(result).__name__}; expected (loss, grads) or a "
                          f"dict with 'loss' and 'grads'") from None
    T, B = mask.shape
    out = {"loss": float(_as_array(f"{where}: loss", result["loss"], ()))}
    grads = result["grads"]
    if not hasattr(grads, "keys"):
        raise CheckFailed(f"{where}: grads is a {type(grads).__name__}; expected a dict keyed by minivrnn's names")
    missing, extra = sorted(set(g["grads"]) - set(grads)), sorted(set(grads) - set(g["grads"]))
    if missing or extra:
        raise CheckFailed(f"{where}: gradient names differ from the parameters': missing {missing}, "
                          f"unexpected {extra}")
    none = [k for k in g["grads"] if grads[k] is None]
    if none:
        raise CheckFailed(f"{where}: the gradient of {listing_names(none)} is None: a parameter the loss never "
                          f"reaches (e.g. the cell's, on a one-step sequence) has gradient 0; return zeros (PyTorch: "
                          f"torch.zeros_like(p) if p.grad is None else p.grad)")
    out["grads"] = {k: _as_array(f"{where}: gradient of {k}", grads[k], want.shape) for k, want in g["grads"].items()}
    out["float32"] = any(getattr(np.asarray(grads[k]), "dtype", None) == np.float32 for k in g["grads"])
    for term in ("nll", "kl"):
        if term in result:
            out[term] = _as_array(f"{where}: per-step {term}", result[term], (T, B))
    if "final_state" in result:
        states = result["final_state"]
        states = (states,) if hasattr(states, "shape") else tuple(states)
        if len(states) != len(g["final_state"]):
            raise CheckFailed(f"{where}: final_state has {len(states)} arrays; expected {len(g['final_state'])} "
                              f"((h,) for the GRU, (h, c) for the LSTM)")
        out["final_state"] = [_as_array(f"{where}: final_state[{i}]", s, (B, want.shape[1]))
                              for i, (s, want) in enumerate(zip(states, g["final_state"]))]
    return out


def listing_names(names):
    return names[0] if len(names) == 1 else f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"


def _case(path):
    return Path(path).stem


def check_loss_against_golden(loss_fn, golden_path, rtol=1e-9):
    """``loss_fn(params, config, x, mask, eps)`` -> (loss, grads) or a dict {"loss", "grads"[, "nll", "kl",
    "final_state"]}.

    ``config`` is a dict of minivrnn.VRNNConfig's fields, ``params`` and ``grads`` are keyed by minivrnn's
    parameter names, ``eps`` is None for the RNN baselines. The loss is the negative ELBO (eq. 10; eq. 2 for
    the baselines) summed over time and data dimensions and averaged over the batch; "nll" and "kl" are the
    per-step terms (T, B), zero on padded steps; "final_state" is (h,) or (h, c) after the last step, each
    (B, H). Everything returned must match the golden file to ``rtol``; when something does not, the
    diagnosis says where (the first step and term that are off, which modules' gradients are)."""
    g, case = load_golden(golden_path), _case(golden_path)
    result = _answer(loss_fn, g, g["x"], g["mask"], g["eps"], case)
    errs = diagnose.golden_errors(result, g)
    worst_seen = diagnose.worst_of(errs)
    if worst_seen <= rtol:
        return worst_seen
    lines = diagnose.diagnose_loss(loss_fn, g, result, errs, rtol)
    if result["float32"] and rtol < FLOAT32_RTOL:
        lines.insert(0, f"your gradients are float32 arrays: check them with rtol=FLOAT32_RTOL ({FLOAT32_RTOL:.0e}) and "
                        f"golden_paths(float32=True)")
    if case in FLOAT64_ONLY and rtol >= FLOAT32_RTOL:
        lines.append(f"{case} is float64 only (FLOAT64_ONLY): float32 cannot resolve 1 - tanh(8)^2")
    raise CheckFailed(f"{case}: {diagnose.summary(errs, rtol)}", worst_seen, rtol, lines)


def check_sample_against_golden(sample_fn, golden_path, rtol=1e-9):
    """``sample_fn(params, config, noise)`` -> x (T, B, D): generation (eqs. 4-6; 1-2 for the baselines) from
    explicit noise (layout of minivrnn.sampling.draw_noise, described in reference_kit/README.md)."""
    g, case = load_golden(golden_path), _case(golden_path)
    got = sample_fn({k: v.copy() for k, v in g["params"].items()}, dict(g["config"]),
                    {k: v.copy() for k, v in g["noise"].items()})
    got = _as_array(f"{case}: sample", got, g["sample"].shape)
    err = array_error(got, g["sample"])
    if worst(err) <= rtol:
        return worst(err)
    raise CheckFailed(f"{case}: the sample is off by {worst(err):.1e} (rtol {rtol:.0e}); {_worst(got, g['sample'], err)}",
                      worst(err), rtol, diagnose.sample_lines(got, g["sample"], rtol, VRNNConfig(**g["config"])))


def _other_junk(x, eps, cells):
    """Copies of x and eps with other junk on ``cells`` (T, B) of bool: varied values, not one constant."""
    x2, eps2 = x.copy(), None if eps is None else eps.copy()
    x2[cells] = -3.0 * (1 + np.arange(x2[cells].size).reshape(x2[cells].shape) % 5)
    if eps2 is not None:
        eps2[cells] = 4.0
    return x2, eps2


def check_padding(loss_fn, golden_path, rtol=1e-9):
    """Padded steps count for nothing and leave the state unchanged (docs/equations.md, "Masks and padding"):
    with the golden file's inputs, whose mask has padded steps inside sequences and at their ends,

    (a) other junk on the padded steps (x and eps) changes neither the loss nor a gradient;
    (b) each sequence in the batch is the sequence alone on its real steps (a padded step inside it skipped):
        the batch loss is the mean of those losses, and (when you return them) its per-step terms add up to
        the sequence's loss alone and its final state is the sequence's final state alone.

    Only (b) sees a state that moves on a padded step, through the real steps after it."""
    g, case = load_golden(golden_path), _case(golden_path)
    x, mask, eps = g["x"], g["mask"], g["eps"]
    base = _answer(loss_fn, g, x, mask, eps, case)
    if not np.isfinite(base["loss"]):
        raise CheckFailed(f"{case}: your loss is {base['loss']} on the golden inputs; the padding check compares "
                          f"finite losses (check_loss_against_golden says where it stops being finite)", rtol=rtol)

    def junk_run(cells):
        x2, eps2 = _other_junk(x, eps, cells)
        return _answer(loss_fn, g, x2, mask, eps2, f"{case} with other junk on the padded steps")

    junk = junk_run(mask == 0)
    junk_loss = float(value_error(junk["loss"], base["loss"]))
    junk_grads = {k: worst(array_error(junk["grads"][k], base["grads"][k])) for k in base["grads"]}
    alone = []
    for b in range(mask.shape[1]):
        real = mask[:, b] > 0
        e = None if eps is None else eps[real, b][:, None]
        alone.append(_answer(loss_fn, g, x[real, b][:, None], np.ones((int(real.sum()), 1)), e,
                             f"{case}, sequence {b} alone ({int(real.sum())} steps)"))
    mean_alone = float(np.mean([a["loss"] for a in alone]))
    batch_err = float(value_error(base["loss"], mean_alone))
    terms_err = 0.0
    if all(t in r for t in ("nll", "kl") for r in [base] + alone):
        terms_err = max(worst(value_error(base["nll"][mask[:, b] > 0, b] + base["kl"][mask[:, b] > 0, b],
                                          a["nll"][:, 0] + a["kl"][:, 0])) for b, a in enumerate(alone))
    state_err = 0.0
    if "final_state" in base and all("final_state" in a for a in alone):
        state_err = max(worst(array_error(s, np.concatenate([a["final_state"][i] for a in alone])))
                        for i, s in enumerate(base["final_state"]))
    worst_seen = max([junk_loss, batch_err, terms_err, state_err] + list(junk_grads.values()))
    if worst_seen <= rtol:
        return worst_seen
    off, lines = [], []
    if junk_loss > rtol:
        off.append(f"other junk on the padded steps changes the loss (by {junk_loss:.1e})")
        lines += diagnose.junk_lines(g, junk_run, base, rtol)
    moved = sorted(k for k, v in junk_grads.items() if v > rtol)
    if moved:
        off.append(f"other junk changes {len(moved)} gradients")
        if junk_loss <= rtol:
            modules = sorted({diagnose.module_of(k) for k in moved}, key=diagnose.MODULES.index)
            lines.append(f"the loss ignores the junk on the padded steps but the gradients of "
                         f"{diagnose.listing(modules)} do not: the backward pass lets the padded steps through "
                         f"(d s'_t = m_t dstate; {diagnose.PADDING})")
    if terms_err > rtol:
        off.append(f"a sequence's per-step terms in the batch differ from its own alone (by {terms_err:.1e})")
    if batch_err > rtol or terms_err > rtol:
        if batch_err > rtol:
            off.append(f"the batch loss is not the mean of each sequence's loss alone (off by {batch_err:.1e})")
        alone_right = None
        if "nll" not in base:  # which is right, the batch or the sequences alone? minivrnn's readable engine says
            config, references = VRNNConfig(**g["config"]), []
            for b, a in enumerate(alone):
                real = mask[:, b] > 0
                e = None if eps is None else eps[real, b][:, None]
                references.append(forward(g["params"], config, x[real, b][:, None], np.ones((int(real.sum()), 1)), e,
                                          engine="readable")[0]["loss"])
            alone_right = diagnose.AloneRight([float(value_error(a["loss"], r)) <= rtol
                                               for a, r in zip(alone, references)], references)
        lines += diagnose.alone_lines(g, base, alone, alone_right, rtol)
    if state_err > rtol:
        off.append(f"the final state differs from each sequence's own (off by {state_err:.1e})")
        lines.append(diagnose.alone_state_line(base["final_state"], [a["final_state"] for a in alone], mask, rtol))
    raise CheckFailed(f"{case}: {'; '.join(off)} (rtol {rtol:.0e})", worst_seen, rtol, lines)


def check_chunks(loss_fn, golden_path, rtol=1e-9, split=None):
    """For an implementation that takes an initial state, ``loss_fn(..., state0=(h,) or (h, c))`` (truncated
    backprop through time): the golden batch cut in two at step ``split`` (default T // 2), the second chunk
    starting from the first one's final state, gives the whole batch's final state and, added up, its loss.
    Needs "final_state" in the answer."""
    g, case = load_golden(golden_path), _case(golden_path)
    x, mask, eps = g["x"], g["mask"], g["eps"]
    s = mask.shape[0] // 2 if split is None else split
    cut = lambda a, part: None if a is None else (a[:s] if part == 0 else a[s:])
    whole = _answer(loss_fn, g, x, mask, eps, case)
    if not np.isfinite(whole["loss"]):
        raise CheckFailed(f"{case}: your loss is {whole['loss']} on the golden inputs; the chunked check compares "
                          f"finite losses (check_loss_against_golden says where it stops being finite)", rtol=rtol)
    first = _answer(loss_fn, g, cut(x, 0), cut(mask, 0), cut(eps, 0), f"{case}, steps 0 to {s - 1}")
    if "final_state" not in first:
        raise CheckFailed(f"{case}: the chunked check needs final_state in your function's answer")
    second = _answer(loss_fn, g, cut(x, 1), cut(mask, 1), cut(eps, 1), f"{case}, steps {s} on",
                     state0=tuple(first["final_state"]))
    loss_err = float(value_error(first["loss"] + second["loss"], whole["loss"]))
    state_err = max(worst(array_error(a, b)) for a, b in zip(second["final_state"], whole["final_state"]))
    worst_seen = max(loss_err, state_err)
    if worst_seen <= rtol:
        return worst_seen
    lines = []
    total = first["loss"] + second["loss"]
    if state_err > rtol:
        lines.append("the second chunk's final state is not the whole batch's: state0 is not where the second "
                     "chunk starts")
    elif loss_err > rtol:
        lines.append(f"the second chunk ends in the whole batch's final state, so state0 is used, but the chunks' "
                     f"losses add up to {total / whole['loss']:.6g} x the whole's ({whole['loss']:.6g}): each must be divided by B "
                     f"alone (eq. 10), not by something that depends on the chunk's length such as T")
    raise CheckFailed(f"{case}: two chunks with the state carried differ from the whole (worst {worst_seen:.1e}, "
                      f"rtol {rtol:.0e})", worst_seen, rtol, lines)
