"""fast/pen.py equals ops/pen.py (the maths of both: tests/ops/test_pen.py)."""
import numpy as np
import pytest

from minivrnn.fast import pen
from minivrnn.ops import pen as readable
from tests.fast.twins import assert_twins_agree


def mixture(rng, lead, K, rho_max=0.99):
    return {
        "xy": rng.normal(size=lead + (2,)),
        "logits": rng.normal(scale=2.0, size=lead + (K,)),
        "mu": rng.normal(size=lead + (K, 2)),
        "sigma": rng.uniform(0.3, 2.0, size=lead + (K, 2)),
        "rho": rng.uniform(-rho_max, rho_max, size=lead + (K,)),
    }


@pytest.mark.parametrize("lead, K", [((7,), 1), ((3, 4), 3), ((2, 3, 2), 5)])
def test_bivariate_mixture_matches_the_readable_ops(lead, K):
    inputs = mixture(np.random.default_rng(K), lead, K)
    inputs["mu"] = np.asfortranarray(inputs["mu"])  # a non-contiguous input must give the same answer
    assert_twins_agree(readable, pen, lambda m, **i: m.bivariate_gmm_logpdf_forward(**i),
                       lambda m, d, cache: m.bivariate_gmm_logpdf_backward(d, cache), inputs)


def test_bernoulli_matches_the_readable_ops():
    rng = np.random.default_rng(11)
    inputs = {"e": rng.integers(0, 2, size=(7, 5)).astype(np.float64), "logit": rng.normal(scale=20.0, size=(7, 5))}
    assert_twins_agree(readable, pen, lambda m, **i: m.bernoulli_logpmf_forward(**i),
                       lambda m, d, cache: m.bernoulli_logpmf_backward(d, cache), inputs)
