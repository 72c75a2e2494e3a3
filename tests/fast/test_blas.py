"""fast/blas.py's gemm, compiled: out = a @ b or out += a @ b, on views, in both float types."""
import numpy as np
import pytest
from numba import njit

from minivrnn.fast.blas import gemm


@njit
def _gemm_on_views(a, b, out, accumulate, k0, k1, j0, j1):
    gemm(a[:, k0:k1], b[k0:k1, j0:j1], out[:, j0:j1], accumulate)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_on_row_views_sets_or_adds_the_product(rng, dtype, rtol, accumulate):
    a, b = rng.normal(size=(5, 9)).astype(dtype), rng.normal(size=(9, 7)).astype(dtype)
    out = rng.normal(size=(5, 7)).astype(dtype)
    expected = out.copy()
    product = a[:, 2:8].astype(np.float64) @ b[2:8, 1:4].astype(np.float64)
    expected[:, 1:4] = expected[:, 1:4] + product if accumulate else product
    _gemm_on_views(a, b, out, accumulate, 2, 8, 1, 4)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol)  # and nothing outside the view changed
    assert out.dtype == dtype


def test_an_empty_inner_dimension_gives_zero_or_leaves_the_sum_alone(rng):
    a, b, out = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), np.ones((3, 2))
    _gemm_on_views(a, b, out, True, 1, 1, 0, 2)
    np.testing.assert_array_equal(out, 1)
    _gemm_on_views(a, b, out, False, 1, 1, 0, 2)
    np.testing.assert_array_equal(out, 0)


@njit
def _gemm(a, b, out):
    gemm(a, b, out, False)


def test_operands_whose_rows_are_not_contiguous_or_do_not_match_are_refused(rng):
    a, b, out = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), np.empty((4, 5))
    with pytest.raises(ValueError, match="rows must be contiguous"):
        _gemm(np.asfortranarray(a), b, out)  # (its columns are contiguous: BLAS would read the wrong entries)
    with pytest.raises(ValueError, match="shapes do not match"):
        _gemm(a, b[:2], out)
