"""Lesson 7's checker: the KL between posterior and prior of every latent dimension, kept apart.

``check_kl_per_dimension`` runs the reader's function on cases of its own (float64, fixed seeds), compares it
with minivrnn's KL applied to one dimension at a time (``minivrnn.ops.kl.kl_gaussian_forward`` on a slice
``[..., j:j+1]``), checks that the dimensions add up to the package's KL and that KL(q || q) is 0, and for a
wrong answer names the slip when it recognises it (the sum over Z taken, the -1/2 dropped, variances used
for standard deviations, the two Gaussians swapped, ...). It prints a verdict, returns True or False, and
never raises on a wrong or unfinished answer.
"""
import numpy as np

from minivrnn.ops.kl import kl_gaussian_forward

from .common import attempt, compare, run_check

NAMES = ("mu_q", "sigma_q", "mu_p", "sigma_p")


def reference_kl_per_dimension(mu_q, sigma_q, mu_p, sigma_p):
    """minivrnn's KL, one latent dimension at a time: (..., Z) x4 -> (..., Z)."""
    args = [np.asarray(a, dtype=np.float64) for a in (mu_q, sigma_q, mu_p, sigma_p)]
    Z = args[0].shape[-1]
    return np.stack([kl_gaussian_forward(*(a[..., j:j + 1] for a in args))[0] for j in range(Z)], axis=-1)


def _slips(mu_q, sigma_q, mu_p, sigma_p):
    """Wrong answers a reader may write, each with the line that says what it is."""
    d2 = (mu_q - mu_p) ** 2
    right = np.log(sigma_p / sigma_q) + (sigma_q**2 + d2) / (2 * sigma_p**2) - 0.5
    return [
        (right + 0.5, "every entry is 1/2 too large: the closing -1/2 of each dimension's term is missing"),
        (np.log(sigma_p**2 / sigma_q**2) + (sigma_q**2 + d2) / (2 * sigma_p**2) - 0.5,
         "the log term is doubled: it is log(sigma_p / sigma_q) of the standard deviations, not of the variances"),
        (np.log(sigma_p / sigma_q) + (sigma_q + d2) / (2 * sigma_p) - 0.5,
         "sigma_q and sigma_p are used where their squares belong: (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2)"),
        (np.log(sigma_p / sigma_q) + (sigma_q**2 + d2) / (2 * sigma_q**2) - 0.5,
         "the fraction is divided by sigma_q^2: KL(q || p) divides by the prior's variance, sigma_p^2"),
        (np.log(sigma_q / sigma_p) + (sigma_p**2 + d2) / (2 * sigma_q**2) - 0.5,
         "this is KL(p || q): the posterior q = N(mu_q, sigma_q^2) comes first, the prior p second"),
        (np.log(sigma_q / sigma_p) + (sigma_q**2 + d2) / (2 * sigma_p**2) - 0.5,
         "the log term has the wrong sign: it is log(sigma_p / sigma_q)"),
        (np.log(sigma_p / sigma_q) + sigma_q**2 / (2 * sigma_p**2) - 0.5,
         "the gap between the means is missing: add (mu_q - mu_p)^2 to sigma_q^2"),
    ]


def _cases():
    rng = np.random.default_rng(70)
    shape = (4, 3, 5)  # (T, B, Z): every step of a batch, as forward returns q_mu, q_sigma, p_mu, p_sigma
    cases = [("(T, B, Z) = (4, 3, 5)", [rng.normal(size=shape), rng.uniform(0.2, 2.0, shape),
                                        rng.normal(size=shape), rng.uniform(0.2, 2.0, shape)]),
             ("one row, Z = 2", [np.array([0.3, -1.2]), np.array([0.5, 1.7]), np.array([-0.4, 0.1]),
                                 np.array([1.3, 0.6])])]
    same = [rng.normal(size=(2, 3)), rng.uniform(0.2, 2.0, (2, 3))]
    cases.append(("q = p (the KL must be 0 in every dimension)", [same[0], same[1], same[0].copy(), same[1].copy()]))
    return cases


def check_kl_per_dimension(kl_per_dimension):
    """``kl_per_dimension(mu_q, sigma_q, mu_p, sigma_p)``, each (..., Z) -> (..., Z): KL(q || p) of every latent
    dimension, not summed over Z."""

    def body():
        for label, args in _cases():
            expected = reference_kl_per_dimension(*args)
            got, error = attempt(kl_per_dimension, *(a.copy() for a in args))
            if error:
                return [f"{label}: {error}"]
            try:
                got = np.asarray(got, dtype=np.float64)
            except (TypeError, ValueError):
                return [f"{label}: expected an array of shape {expected.shape}, got {type(got).__name__}"]
            if got.shape == expected.shape[:-1] and np.allclose(got, expected.sum(-1), rtol=1e-7, atol=1e-10):
                return [f"{label}: shape {got.shape}, expected {expected.shape}: you summed over the latent "
                        "dimensions (that is the package's KL); keep the last axis, one KL per dimension"]
            problem = compare(f"{label}: KL per dimension", got, expected, rtol=1e-7, atol=1e-10)
            if not problem:
                continue
            if got.shape == expected.shape and np.all(np.isfinite(got)):
                for wrong, why in _slips(*args):
                    if np.allclose(got, wrong, rtol=1e-7, atol=1e-10):
                        return [problem, why]
                total = kl_gaussian_forward(*args)[0]
                if not np.allclose(got.sum(-1), total, rtol=1e-7, atol=1e-10):
                    problem += "; its sum over the last axis is not the package's KL either"
            return [problem]
        return []

    return run_check("kl_per_dimension", body)
