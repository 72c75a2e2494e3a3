"""Solution to lesson 2's exercise (try it first: ``lessons/exercises/lesson02.py`` checks your answer).

Per dimension, KL(q || p) = log(s_p / s_q) + (s_q^2 + (mu_q - mu_p)^2) / (2 s_p^2) - 1/2
(docs/equations.md, "Closed forms"); minivrnn's own version is ``minivrnn/ops/kl.py``, which differentiates
the equal form 0.5 (expm1(2 v) - 2 v + t^2) with v = log(s_q / s_p), t = (mu_q - mu_p) / s_p.
"""


def kl_backward(dkl, mu_q, sigma_q, mu_p, sigma_p):
    """Gradients of dkl * KL(q || p) (summed over the last axis): inputs (N, Z), dkl (N,) ->
    (dmu_q, dsigma_q, dmu_p, dsigma_p), each (N, Z)."""
    g = dkl[:, None]  # every z of a row receives that row's upstream gradient
    diff = mu_q - mu_p
    dmu_q = g * diff / sigma_p**2
    dmu_p = -dmu_q
    dsigma_q = g * (-1 / sigma_q + sigma_q / sigma_p**2)  # from -log s_q and s_q^2 / (2 s_p^2)
    dsigma_p = g * (1 / sigma_p - (sigma_q**2 + diff**2) / sigma_p**3)  # from log s_p and 1 / (2 s_p^2)
    return dmu_q, dsigma_q, dmu_p, dsigma_p
