import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numba import njit
from scipy.special import expit

from minivrnn.gradcheck import gradcheck
from minivrnn.fast import activations as act
from tests.reference import activations as ref

PAIRS = {
    "relu": (act.relu_forward, act.relu_backward),
    "tanh": (act.tanh_forward, act.tanh_backward),
    "sigmoid": (act.sigmoid_forward, act.sigmoid_backward),
    "softplus": (act.softplus_forward, act.softplus_backward),
    "logsumexp": (act.logsumexp_forward, act.logsumexp_backward),
    "log_softmax": (act.log_softmax_forward, act.log_softmax_backward),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (2, 3, 5)])
def test_gradients(name, shape):
    forward, backward = PAIRS[name]
    a = np.random.default_rng(0).normal(scale=3.0, size=shape)
    errors = gradcheck(
        lambda a: forward(a)[0], lambda dy, a: {"a": backward(dy, forward(a)[1])}, {"a": a}
    )
    assert errors["a"] < 1e-6


@pytest.mark.parametrize(
    "name, reference",
    [("softplus", ref.softplus), ("sigmoid", ref.sigmoid), ("logsumexp", ref.logsumexp)],
)
def test_kernels_match_the_reference(name, reference):
    a = np.random.default_rng(1).normal(scale=20.0, size=(7, 5))
    np.testing.assert_allclose(PAIRS[name][0](a)[0], reference(a), rtol=1e-10)


def test_closed_forms():
    a = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(act.softplus_forward(a)[0], np.log(1 + np.exp(a)), rtol=1e-14)
    np.testing.assert_allclose(act.sigmoid_forward(a)[0], 1 / (1 + np.exp(-a)), rtol=1e-14)
    np.testing.assert_allclose(act.logsumexp_forward(a)[0], np.log(np.exp(a).sum()), rtol=1e-14)
    np.testing.assert_allclose(np.exp(act.log_softmax_forward(a)[0]).sum(), 1.0, rtol=1e-14)


def test_log_softmax_and_logsumexp_match_scipy():
    from scipy.special import log_softmax, logsumexp

    a = np.random.default_rng(4).normal(scale=30.0, size=(2, 3, 5))
    np.testing.assert_allclose(act.log_softmax_forward(a)[0], log_softmax(a, axis=-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(act.logsumexp_forward(a)[0], logsumexp(a, axis=-1), rtol=1e-12)


def test_float32_in_float32_out():
    a = np.linspace(-5, 5, 11, dtype=np.float32).reshape(1, 11)
    for name, (forward, backward) in PAIRS.items():
        y, cache = forward(a)
        assert y.dtype == np.float32, name
        assert backward(np.ones_like(y), cache).dtype == np.float32, name


def test_non_contiguous_input():
    a = np.random.default_rng(2).normal(size=(4, 3)).T  # Fortran order view
    np.testing.assert_allclose(act.softplus_forward(a)[0], ref.softplus(a), rtol=1e-12)
    np.testing.assert_allclose(act.sigmoid_forward(a)[0], ref.sigmoid(a), rtol=1e-12)
    np.testing.assert_allclose(act.logsumexp_forward(a)[0], ref.logsumexp(a), rtol=1e-12)


def test_all_minus_infinity_row():
    assert act.logsumexp_forward(np.full((1, 3), -np.inf))[0][0] == -np.inf


def test_bad_dtype_is_a_value_error():
    with pytest.raises(ValueError, match="a: expected dtype float32 or float64"):
        act.softplus_forward(np.arange(3))


@pytest.mark.parametrize("name", ["relu", "tanh"])
@pytest.mark.parametrize("a, message", [
    (np.arange(3), "^a: expected dtype float32 or float64, got int64$"),
    (np.ones(3, np.float16), "^a: expected dtype float32 or float64, got float16$"),
    ([1.0, -1.0], "^a: expected a NumPy array, got list$"),
], ids=["int64", "float16", "list"])
def test_relu_and_tanh_check_their_input_like_sigmoid_and_softplus(name, a, message):
    with pytest.raises(ValueError, match=message):
        PAIRS[name][0](a)


extreme = st.floats(-1e4, 1e4, allow_nan=False)


@given(arrays(st.sampled_from([np.float32, np.float64]), st.integers(1, 6), elements=extreme))
def test_softplus_and_sigmoid_stay_finite_for_extreme_inputs(a):
    y, slope = act.softplus_forward(a)
    assert np.all(np.isfinite(y)) and np.all(y >= 0) and np.all(y >= a)
    assert np.all((slope >= 0) & (slope <= 1))
    s = act.sigmoid_forward(a)[0]
    assert np.all(np.isfinite(s)) and s.shape == a.shape


def test_softplus_offset_is_added_in_the_same_pass():
    # sigma = softplus(a) + sigma_min (heads.py) in one kernel: the same numbers as adding afterwards.
    a = np.random.default_rng(6).normal(scale=5.0, size=(7, 3)).astype(np.float32)
    y, slope = act.softplus_forward(a)
    y_off, slope_off = act.softplus_forward(a, 1e-3)
    np.testing.assert_array_equal(y_off, y + np.float32(1e-3))
    np.testing.assert_array_equal(slope_off, slope)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)), elements=extreme),
    st.floats(-1e4, 1e4),
)
def test_logsumexp_is_finite_bounded_and_shift_equivariant(a, c):
    lse = act.logsumexp_forward(a)[0]
    assert np.all(np.isfinite(lse)) and lse.shape == a.shape[:1]
    assert np.all(lse >= a.max(axis=-1)) and np.all(lse <= a.max(axis=-1) + np.log(a.shape[-1]) + 1e-9)
    np.testing.assert_allclose(act.logsumexp_forward(a + c)[0], lse + c, rtol=1e-9, atol=1e-9)


@njit
def _apply_scalar_helpers(a, tanh_out, log1p_out, softplus_out, slope_out):
    one = a.dtype.type(1.0)
    for i in range(a.size):
        tanh_out[i] = act._tanh(a[i], one)
        log1p_out[i] = act._log1p(abs(a[i]), one)
        softplus_out[i], slope_out[i] = act._softplus(a[i], one)


@pytest.mark.parametrize("dtype, ulps", [(np.float64, 4), (np.float32, 4)])
def test_scalar_helpers_match_the_library_functions_to_a_few_ulps(dtype, ulps):
    # Every scale from subnormal-adjacent to saturated, both signs, and the branch point of _tanh (0.35).
    rng = np.random.default_rng(5)
    scales = [1e-30, 1e-8, 1e-3, 0.1, 0.35, 1.0, 5.0, 30.0, 1e4]
    a = np.concatenate([rng.normal(size=200) * s for s in scales] + [[0.0, -0.0, 0.35, -0.35, 0.3499]])
    a = a.astype(dtype)
    outs = [np.empty_like(a) for _ in range(4)]
    _apply_scalar_helpers(a, *outs)
    expected = [np.tanh(a), np.log1p(np.abs(a)), np.logaddexp(0, a), expit(a.astype(np.float64))]
    tiny = np.finfo(dtype).tiny
    for name, got, want in zip(["tanh", "log1p", "softplus", "sigmoid"], outs, expected):
        want = want.astype(dtype)
        rel = np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want.astype(np.float64)), tiny)
        assert rel.max() <= ulps * np.finfo(dtype).eps, (name, a[np.argmax(rel)], rel.max())
