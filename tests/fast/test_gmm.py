"""fast/gmm.py equals ops/gmm.py (the maths of both: tests/ops/test_gmm.py)."""
import numpy as np
import pytest

from minivrnn.fast import gmm
from minivrnn.ops import gmm as readable
from tests.fast.precision import assert_float32_close_to_float64
from tests.fast.twins import assert_twins_agree


def _inputs(rng, lead, K, D):
    return {
        "x": rng.normal(size=(*lead, D)),
        "logits": rng.normal(size=(*lead, K)),
        "mu": rng.normal(size=(*lead, K, D)),
        "sigma": rng.uniform(0.5, 2.0, size=(*lead, K, D)),
    }


@pytest.mark.parametrize("lead, K, D", [((9,), 1, 1), ((4, 3), 3, 2), ((2, 3, 5), 4, 3)])
def test_matches_the_readable_ops(lead, K, D):
    inputs = _inputs(np.random.default_rng(2), lead, K, D)
    inputs["logits"] *= 10.0  # some components nearly switched off
    assert_twins_agree(readable, gmm, lambda m, **i: m.gmm_logpdf_forward(**i),
                       lambda m, d, cache: m.gmm_logpdf_backward(d, cache), inputs)


def test_non_contiguous_input():
    inputs = {k: np.moveaxis(v, 0, 1) for k, v in _inputs(np.random.default_rng(3), (3, 4), 2, 3).items()}
    expected = readable.gmm_logpdf_forward(**{k: np.ascontiguousarray(v) for k, v in inputs.items()})[0]
    np.testing.assert_allclose(gmm.gmm_logpdf_forward(**inputs)[0], expected, rtol=1e-12)


def test_float32_in_float32_out_and_close_to_float64():
    assert_float32_close_to_float64(gmm.gmm_logpdf_forward, gmm.gmm_logpdf_backward,
                                    _inputs(np.random.default_rng(4), (3, 2), 3, 2))
