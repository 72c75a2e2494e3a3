"""fast/recurrent.py's helpers shared by the GRU, the LSTM and the chain."""
import numpy as np
import pytest

from minivrnn.fast.recurrent import copy_rows


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def testcopy_rows_writes_exactly_the_destination_rows(rng, dtype):
    # the chain copies a chunk's rows of the state into rows r0:r1 of a (T, B, H) array; the rest stays as it was
    src = rng.normal(size=(3, 5)).astype(dtype)
    big = np.full((2, 8, 5), np.nan, dtype)
    copy_rows(src, big[1, 2:5])
    np.testing.assert_array_equal(big[1, 2:5], src)
    assert np.isnan(big[0]).all() and np.isnan(big[1, :2]).all() and np.isnan(big[1, 5:]).all()


def testcopy_rows_of_zero_width_does_nothing():
    # the GRU's "cell state" is a zero-width array (only the LSTM has one)
    dst = np.empty((4, 0))
    copy_rows(np.empty((4, 0)), dst)
    assert dst.shape == (4, 0)
