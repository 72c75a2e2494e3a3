"""Checkers for lesson 1's exercises: the backward passes of the output densities of eq. (2).

1. ``check_gaussian_backward(gaussian_backward)``: the diagonal Gaussian log-density's backward,
   ``gaussian_backward(dlogp, x, mu, sigma) -> (dx, dmu, dsigma)``.
2. ``check_gmm(gmm_forward, gmm_backward)``: the Gaussian mixture's log-density with the log-sum-exp max
   shift, ``gmm_forward(x, logits, mu, sigma) -> logp``, and its backward,
   ``gmm_backward(dlogp, x, logits, mu, sigma) -> (dx, dlogits, dmu, dsigma)``.

The right answers come from minivrnn's own components (``minivrnn.ops.gaussian``, ``minivrnn.ops.gmm``), whose
backward passes the test suite holds to float64 finite differences. ``explain`` (used by the other lessons'
checkers too) adds to ``common.compare``'s line what a mismatch looks like: a flipped sign, a constant factor,
a missing upstream gradient.
"""
import numpy as np

from minivrnn.ops.gaussian import gaussian_logpdf_backward, gaussian_logpdf_forward
from minivrnn.ops.gmm import gmm_logpdf_backward, gmm_logpdf_forward

from .common import attempt, compare, run_check

RTOL, ATOL = 1e-6, 1e-9  # float64 throughout: a right answer agrees to rounding, a wrong one by far more


def explain(name, got, expected, hint="", upstream=None, rtol=RTOL, atol=ATOL):
    """'' if ``got`` matches ``expected``; else ``compare``'s line, what the mismatch looks like, and ``hint``.

    ``upstream`` (the rows' upstream gradient, shape ``expected.shape[:k]``) lets it recognise a gradient
    that forgot to multiply by it."""
    problem = compare(name, got, expected, rtol, atol)
    if not problem:
        return ""
    g, e = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if g.shape == e.shape and np.all(np.isfinite(g)):
        close = lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-8)  # noqa: E731
        big = np.abs(e) > 1e-6 * max(np.abs(e).max(), 1e-300)
        ratio = g[big] / e[big] if big.any() else np.array([])
        if close(g, -e):
            problem += " — exactly the negative of the right values: a sign is flipped"
        elif upstream is not None and close(g * _expand(upstream, e.ndim), e):
            problem += (" — right if the upstream gradient were 1: multiply by each row's upstream "
                        "gradient (the chain rule's first factor)")
        elif ratio.size > 1 and close(ratio, ratio[0]) and close(g[~big], 0 * g[~big]):
            problem += f" — every entry is {ratio[0]:.4g} times the right one: a constant factor is off"
    elif g.shape == e.shape:
        problem += " — so something overflowed, underflowed to 0 and was divided by, or took log(0)"
    return problem + (f" (hint: {hint})" if hint else "")


def _expand(upstream, ndim):
    upstream = np.asarray(upstream, dtype=np.float64)
    return upstream.reshape(upstream.shape + (1,) * (ndim - upstream.ndim))


def unpack(got, names):
    """The reader's returned tuple as a list of len(names) arrays, or a problem line."""
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        n = len(got) if isinstance(got, (tuple, list)) else type(got).__name__
        return None, f"return a tuple ({', '.join(names)}); yours returned {n}" + (" values" if isinstance(n, int) else "")
    return list(got), ""


def first_failing(cases, check_one):
    """Run ``check_one(case_name, *case)`` on the cases in order; return the problems of the first that has
    any (prefixed with the case's name), so that one mistake is reported once, where it first shows."""
    for name, case in cases:
        problems = [p for p in check_one(*case) if p]
        if problems:
            return [f"{name}: {p}" for p in problems]
    return []


# --- exercise 1: the Gaussian log-density's backward -----------------------------------------------------

GAUSSIAN_HINTS = {
    "dx": "x enters log N only through -u_d^2 / 2, with u_d = (x_d - mu_d) / sigma_d",
    "dmu": "mu enters exactly where x does, inside u_d, with the opposite sign",
    "dsigma": "sigma_d appears twice: in -log sigma_d and inside u_d = (x_d - mu_d) / sigma_d",
}


def _gaussian_cases():
    rng = np.random.default_rng(11)
    N, D = 4, 3
    x, mu = rng.standard_normal((N, D)), rng.standard_normal((N, D))
    sigma = rng.uniform(0.3, 2.0, (N, D))
    yield "rows with upstream gradient dlogp = 1", (np.ones(N), x, mu, sigma)
    yield "rows with random upstream gradients dlogp", (rng.standard_normal(N), x, mu, sigma)


def check_gaussian_backward(gaussian_backward):
    """Exercise 1. Calls ``gaussian_backward(dlogp, x, mu, sigma)`` (x, mu, sigma (N, D), dlogp (N,)) and
    compares its (dx, dmu, dsigma) with ``minivrnn.ops.gaussian.gaussian_logpdf_backward``."""

    def one(dlogp, x, mu, sigma):
        got, error = attempt(gaussian_backward, dlogp.copy(), x.copy(), mu.copy(), sigma.copy())
        if error:
            return [f"your function {error}"]
        got, problem = unpack(got, ("dx", "dmu", "dsigma"))
        if problem:
            return [problem]
        expected = gaussian_logpdf_backward(dlogp, gaussian_logpdf_forward(x, mu, sigma)[1])
        return [explain(name, g, e, GAUSSIAN_HINTS[name], upstream=dlogp)
                for name, g, e in zip(("dx", "dmu", "dsigma"), got, expected)]

    return run_check("Gaussian log-density backward", lambda: first_failing(_gaussian_cases(), one))


# --- exercise 2: the mixture's log-density, forward and backward ------------------------------------------

GMM_HINTS = {
    "logp": "log p(x) = logsumexp_k [log pi_k + log N(x; mu_k, sigma_k)] with log pi = log_softmax(logits)",
    "dx": "x is shared by the K components: its gradient collects every component's share",
    "dlogits": "logits reach logp through log pi = log_softmax(logits), which also normalises the weights",
    "dmu": "component k's Gaussian gradient (exercise 1), weighted by how much of p(x) component k explains",
    "dsigma": "component k's Gaussian gradient (exercise 1), weighted by how much of p(x) component k explains",
}
SHIFT_HINT = ("exp() of numbers this large or this negative overflows to inf or underflows to 0: subtract the "
              "largest term before exp and add it back after the log (log-sum-exp's max shift; "
              "docs/equations.md, \"Closed forms\")")


def _gmm_cases():
    rng = np.random.default_rng(12)

    def case(N, K, D, offset=0.0, sigma=None, logit_offset=0.0):
        mu = rng.standard_normal((N, K, D))
        s = rng.uniform(0.5, 1.5, (N, K, D)) if sigma is None else np.full((N, K, D), sigma)
        x = mu[:, 0] + s[:, 0] * rng.standard_normal((N, D)) + offset  # near component 0, or far from all
        return rng.standard_normal(N), x, logit_offset + rng.standard_normal((N, K)), mu, s

    yield "an ordinary case (N = 4 rows, K = 3 components, D = 2)", case(4, 3, 2), False
    yield ("x far from every component (every log pi_k + log N_k is below -1000)",
           case(3, 3, 2, offset=60.0), True)
    yield ("sharp components in D = 128 (sigma = 1e-4: log N_k of the nearest is about +1000)",
           case(3, 2, 128, sigma=1e-4), True)
    yield ("logits near 1000 (softmax sees only their differences, but exp(1000) overflows)",
           case(3, 3, 2, logit_offset=1000.0), True)


def check_gmm(gmm_forward, gmm_backward):
    """Exercise 2. Calls ``gmm_forward(x, logits, mu, sigma)`` and ``gmm_backward(dlogp, x, logits, mu, sigma)``
    (x (N, D), logits (N, K), mu and sigma (N, K, D), dlogp (N,)) and compares them with
    ``minivrnn.ops.gmm``, on an ordinary case and on three that overflow without the max shift."""

    def one(dlogp, x, logits, mu, sigma, extreme):
        expected_logp, cache = gmm_logpdf_forward(x, logits, mu, sigma)
        expected = gmm_logpdf_backward(dlogp, cache)
        problems = []
        with np.errstate(all="ignore"):  # an overflow is reported below, not as a warning
            logp, error = attempt(gmm_forward, x.copy(), logits.copy(), mu.copy(), sigma.copy())
            grads, error_b = attempt(gmm_backward, dlogp.copy(), x.copy(), logits.copy(), mu.copy(), sigma.copy())
        if error:
            problems.append(f"gmm_forward {error}")
        else:
            p = explain("logp", logp, expected_logp, GMM_HINTS["logp"])
            if p and extreme and not np.all(np.isfinite(np.asarray(logp, dtype=np.float64))):
                p = p.split(" (hint")[0] + f" (hint: {SHIFT_HINT})"
            problems.append(p)
        if error_b:
            return problems + [f"gmm_backward {error_b}"]
        grads, problem = unpack(grads, ("dx", "dlogits", "dmu", "dsigma"))
        if problem:
            return problems + [f"gmm_backward: {problem}"]
        for name, g, e in zip(("dx", "dlogits", "dmu", "dsigma"), grads, expected):
            p = explain(name, g, e, GMM_HINTS[name], upstream=dlogp)
            if p and extreme and not np.all(np.isfinite(np.asarray(g, dtype=np.float64))):
                p = p.split(" (hint")[0] + (" (hint: the responsibilities exp(a_k) / sum_j exp(a_j) overflow or "
                                            "divide 0 by 0 here: compute them as exp(a_k - logp), with the "
                                            "shifted logp)")
            problems.append(p)
        return problems

    cases = [(name, c + (extreme,)) for name, c, extreme in _gmm_cases()]
    return run_check("mixture (GMM) log-density and its backward", lambda: first_failing(cases, one))
