import numpy as np
import pytest

from minivrnn._validate import check_arrays


def test_binds_letters_and_leading_axes():
    sizes = check_arrays(x=(np.zeros((2, 3, 4)), "... D"), mu=(np.zeros((2, 3, 4)), "... D"))
    assert sizes == {"...": (2, 3), "D": 4}


def test_names_the_argument_and_the_expected_shape():
    with pytest.raises(ValueError, match=r"sigma: expected shape \(\.\.\., D\) = \(2, 4\), got \(2, 5\)"):
        check_arrays(x=(np.zeros((2, 4)), "... D"), sigma=(np.zeros((2, 5)), "... D"))


def test_leading_axes_must_agree():
    with pytest.raises(ValueError, match="mu: expected shape"):
        check_arrays(x=(np.zeros((2, 4)), "... D"), mu=(np.zeros((3, 4)), "... D"))


def test_fixed_size_and_rank():
    with pytest.raises(ValueError, match=r"xy: expected shape \(\.\.\., 2\)"):
        check_arrays(xy=(np.zeros((5, 3)), "... 2"))
    with pytest.raises(ValueError, match=r"W: expected shape \(I, O\)"):
        check_arrays(W=(np.zeros((5, 3, 1)), "I O"))


def test_dtype_must_be_float_and_shared():
    with pytest.raises(ValueError, match="x: expected dtype float32 or float64, got int64"):
        check_arrays(x=(np.zeros(3, dtype=np.int64), "D"))
    with pytest.raises(ValueError, match=r"mu: expected dtype float64 \(the dtype of x\), got float32"):
        check_arrays(x=(np.zeros(3), "D"), mu=(np.zeros(3, dtype=np.float32), "D"))
    with pytest.raises(ValueError, match="x: expected a NumPy array, got list"):
        check_arrays(x=([1.0, 2.0], "D"))
