"""Checker for lesson 2's exercise: the gradient of the closed-form KL between two diagonal Gaussians.

``check_kl_backward(kl_backward)`` calls ``kl_backward(dkl, mu_q, sigma_q, mu_p, sigma_p)`` (each of
mu_q, sigma_q, mu_p, sigma_p (N, Z), dkl (N,)), which returns (dmu_q, dsigma_q, dmu_p, dsigma_p), the
gradients of ``dkl * KL(q || p)``, and compares them with ``minivrnn.ops.kl.kl_gaussian_backward`` and with
float64 central differences of ``kl_gaussian_forward``.
"""
import numpy as np

from minivrnn.ops.kl import kl_gaussian_backward, kl_gaussian_forward

from .common import attempt, run_check
from .lesson01 import explain, first_failing, unpack

NAMES = ("dmu_q", "dsigma_q", "dmu_p", "dsigma_p")
HINTS = {
    "dmu_q": "mu_q appears only in (mu_q - mu_p)^2 / (2 sigma_p^2)",
    "dmu_p": "mu_p appears in the same term as mu_q, (mu_q - mu_p)^2 / (2 sigma_p^2), with the opposite sign",
    "dsigma_q": "sigma_q appears twice: in log(sigma_p / sigma_q) and in sigma_q^2 / (2 sigma_p^2)",
    "dsigma_p": "sigma_p appears in log(sigma_p / sigma_q) and in the denominator 2 sigma_p^2, which divides "
                "both sigma_q^2 and (mu_q - mu_p)^2",
}


def _cases():
    rng = np.random.default_rng(21)
    N, Z = 3, 4
    mu_q, mu_p = rng.standard_normal((2, N, Z))
    sigma_q, sigma_p = rng.uniform(0.3, 2.0, (2, N, Z))
    yield "rows with upstream gradient dkl = 1", (np.ones(N), mu_q, sigma_q, mu_p, sigma_p)
    yield "rows with random upstream gradients dkl", (rng.standard_normal(N), mu_q, sigma_q, mu_p, sigma_p)
    yield ("q equal to p (the KL's minimum: every gradient is 0 there)",
           (rng.standard_normal(N), mu_q, sigma_q, mu_q.copy(), sigma_q.copy()))
    yield ("q much narrower or much wider than p (sigma_q / sigma_p from 0.01 to 100)",
           (rng.standard_normal(N), mu_q, sigma_p * 10.0 ** rng.uniform(-2, 2, (N, Z)), mu_p, sigma_p))


def finite_differences(dkl, mu_q, sigma_q, mu_p, sigma_p, step=1e-6):
    """Central differences of sum(dkl * KL) with respect to each input, float64, relative steps."""
    inputs = [mu_q, sigma_q, mu_p, sigma_p]
    grads = []
    for i, a in enumerate(inputs):
        g = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            h = step * max(1.0, abs(a[index]))
            plus, minus = [b.copy() for b in inputs], [b.copy() for b in inputs]
            plus[i][index] += h
            minus[i][index] -= h
            g[index] = (dkl @ kl_gaussian_forward(*plus)[0] - dkl @ kl_gaussian_forward(*minus)[0]) / (2 * h)
        grads.append(g)
    return grads


def check_kl_backward(kl_backward):
    """The exercise. Prints what is right and, for a wrong gradient, which one, where and by how much."""

    def one(dkl, mu_q, sigma_q, mu_p, sigma_p):
        got, error = attempt(kl_backward, dkl.copy(), mu_q.copy(), sigma_q.copy(), mu_p.copy(), sigma_p.copy())
        if error:
            return [f"your function {error}"]
        got, problem = unpack(got, NAMES)
        if problem:
            return [problem]
        expected = kl_gaussian_backward(dkl, kl_gaussian_forward(mu_q, sigma_q, mu_p, sigma_p)[1])
        problems = [explain(n, g, e, HINTS[n], upstream=dkl) for n, g, e in zip(NAMES, got, expected)]
        if any(problems):  # a second opinion, independent of minivrnn's backward: the slope of its forward
            fd = finite_differences(dkl, mu_q, sigma_q, mu_p, sigma_p)
            agree = all(np.allclose(f, e, rtol=1e-5, atol=1e-7) for f, e in zip(fd, expected))
            problems.append("the expected values are kl_gaussian_backward's, and central differences of "
                            f"kl_gaussian_forward {'agree with them' if agree else 'DISAGREE with them: please report'}")
        return problems

    return run_check("the KL's gradient", lambda: first_failing(_cases(), one))
