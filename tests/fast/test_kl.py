"""fast/kl.py equals ops/kl.py (the maths of both: tests/ops/test_kl.py)."""
import numpy as np
import pytest

from minivrnn.fast import kl
from minivrnn.ops import kl as readable
from tests.fast.precision import assert_float32_close_to_float64
from tests.fast.twins import assert_twins_agree


def _inputs(rng, lead, Z):
    return {
        "mu_q": rng.normal(size=(*lead, Z)),
        "sigma_q": rng.uniform(0.3, 2.0, size=(*lead, Z)),
        "mu_p": rng.normal(size=(*lead, Z)),
        "sigma_p": rng.uniform(0.3, 2.0, size=(*lead, Z)),
    }


@pytest.mark.parametrize("lead, Z", [((11,), 1), ((4, 3), 5), ((2, 3, 5), 8)])
def test_matches_the_readable_ops(lead, Z):
    assert_twins_agree(readable, kl, lambda m, **i: m.kl_gaussian_forward(**i),
                       lambda m, d, cache: m.kl_gaussian_backward(d, cache),
                       _inputs(np.random.default_rng(1), lead, Z))


def test_non_contiguous_input():
    inputs = {k: v.T for k, v in _inputs(np.random.default_rng(3), (4,), 6).items()}  # (Z, N) -> (N, Z) views
    expected = readable.kl_gaussian_forward(**{k: np.ascontiguousarray(v) for k, v in inputs.items()})[0]
    np.testing.assert_allclose(kl.kl_gaussian_forward(**inputs)[0], expected, rtol=1e-12)


def test_float32_in_float32_out_and_close_to_float64():
    assert_float32_close_to_float64(kl.kl_gaussian_forward, kl.kl_gaussian_backward,
                                    _inputs(np.random.default_rng(4), (3, 2), 4))
