"""fast/gaussian.py equals ops/gaussian.py (the maths of both: tests/ops/test_gaussian.py)."""
import numpy as np
import pytest

from minivrnn.fast import gaussian
from minivrnn.ops import gaussian as readable
from tests.fast.precision import assert_float32_close_to_float64
from tests.fast.twins import assert_twins_agree


def _inputs(rng, lead, D):
    return {"x": rng.normal(size=(*lead, D)), "mu": rng.normal(size=(*lead, D)),
            "sigma": rng.uniform(0.5, 2.0, size=(*lead, D))}


@pytest.mark.parametrize("lead, D", [((9,), 1), ((4, 3), 2), ((2, 3, 5), 7)])
def test_matches_the_readable_ops(lead, D):
    assert_twins_agree(readable, gaussian, lambda m, **i: m.gaussian_logpdf_forward(**i),
                       lambda m, d, cache: m.gaussian_logpdf_backward(d, cache),
                       _inputs(np.random.default_rng(0), lead, D))


def test_non_contiguous_input():
    inputs = {k: v.transpose(1, 0, 2) for k, v in _inputs(np.random.default_rng(3), (4, 3), 2).items()}
    expected = readable.gaussian_logpdf_forward(**{k: np.ascontiguousarray(v) for k, v in inputs.items()})[0]
    np.testing.assert_allclose(gaussian.gaussian_logpdf_forward(**inputs)[0], expected, rtol=1e-12)


def test_the_row_kernel_equals_the_array_function():
    inputs = _inputs(np.random.default_rng(4), (5,), 3)
    rows = [gaussian.gaussian_row(inputs["x"][n], inputs["mu"][n], inputs["sigma"][n]) for n in range(5)]
    np.testing.assert_allclose(rows, readable.gaussian_logpdf_forward(**inputs)[0], rtol=1e-12)


def test_float32_in_float32_out_and_close_to_float64():
    assert_float32_close_to_float64(gaussian.gaussian_logpdf_forward, gaussian.gaussian_logpdf_backward,
                                    _inputs(np.random.default_rng(4), (3, 2), 4))
