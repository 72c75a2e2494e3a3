"""The maths of ops/activations.py, held for the readable module and its compiled twin alike."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import expit, log_softmax, logsumexp

from minivrnn.fast import activations as fast_activations
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import activations as ops_activations

NAMES = ("relu", "tanh", "sigmoid", "softplus", "logsumexp", "log_softmax")


@pytest.fixture(params=[ops_activations, fast_activations], ids=["ops", "fast"], scope="module")
def act(request):
    return request.param


def pair(act, name):
    return getattr(act, f"{name}_forward"), getattr(act, f"{name}_backward")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (2, 3, 5)])
def test_gradients(act, name, shape):
    forward, backward = pair(act, name)
    a = np.random.default_rng(0).normal(scale=3.0, size=shape)
    errors = gradcheck(lambda a: forward(a)[0], lambda dy, a: {"a": backward(dy, forward(a)[1])}, {"a": a})
    assert errors["a"] < 1e-6


def test_closed_forms(act):
    a = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(act.relu_forward(a)[0], [0.0, 0.0, 3.0], rtol=0)
    np.testing.assert_allclose(act.tanh_forward(a)[0], (np.exp(2 * a) - 1) / (np.exp(2 * a) + 1), rtol=1e-14)
    np.testing.assert_allclose(act.softplus_forward(a)[0], np.log(1 + np.exp(a)), rtol=1e-14)
    np.testing.assert_allclose(act.sigmoid_forward(a)[0], 1 / (1 + np.exp(-a)), rtol=1e-14)
    np.testing.assert_allclose(act.logsumexp_forward(a)[0], np.log(np.exp(a).sum()), rtol=1e-14)
    np.testing.assert_allclose(np.exp(act.log_softmax_forward(a)[0]).sum(), 1.0, rtol=1e-14)


def test_match_scipy(act):
    a = np.random.default_rng(4).normal(scale=30.0, size=(2, 3, 5))
    np.testing.assert_allclose(act.log_softmax_forward(a)[0], log_softmax(a, axis=-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(act.logsumexp_forward(a)[0], logsumexp(a, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(act.sigmoid_forward(a)[0], expit(a), rtol=1e-12)
    np.testing.assert_allclose(act.softplus_forward(a)[0], np.log1p(np.exp(-np.abs(a))) + np.maximum(a, 0),
                               rtol=1e-12)


def test_infinite_rows_of_logsumexp(act):
    with np.errstate(invalid="ignore"):
        assert act.logsumexp_forward(np.full((1, 3), -np.inf))[0][0] == -np.inf
        assert act.logsumexp_forward(np.array([[0.0, np.inf, -np.inf]]))[0][0] == np.inf
    assert act.logsumexp_forward(np.array([[-np.inf, 0.0, -np.inf]]))[0][0] == 0.0


def test_float32_in_float32_out(act):
    a = np.linspace(-5, 5, 11, dtype=np.float32).reshape(1, 11)
    for name in NAMES:
        forward, backward = pair(act, name)
        y, cache = forward(a)
        assert y.dtype == np.float32, name
        assert backward(np.ones_like(y), cache).dtype == np.float32, name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("a, message", [
    (np.arange(3), "^a: expected dtype float32 or float64, got int64$"),
    (np.ones(3, np.float16), "^a: expected dtype float32 or float64, got float16$"),
    ([1.0, -1.0], "^a: expected a NumPy array, got list$"),
], ids=["int64", "float16", "list"])
def test_bad_input_is_a_value_error_naming_it(act, name, a, message):
    with pytest.raises(ValueError, match=message):
        pair(act, name)[0](a)


def test_relu_keeps_nan(act):
    y, cache = act.relu_forward(np.array([np.nan, -1.0, 2.0]))
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2
    np.testing.assert_array_equal(act.relu_backward(np.ones(3), cache), [0.0, 0.0, 1.0])


extreme = st.floats(-1e4, 1e4, allow_nan=False)


@given(arrays(st.sampled_from([np.float32, np.float64]), st.integers(1, 6), elements=extreme))
def test_softplus_and_sigmoid_stay_finite_for_extreme_inputs(act, a):
    y, slope = act.softplus_forward(a)
    assert np.all(np.isfinite(y)) and np.all(y >= 0) and np.all(y >= a)
    assert np.all((slope >= 0) & (slope <= 1))
    s = act.sigmoid_forward(a)[0]
    assert np.all(np.isfinite(s)) and s.shape == a.shape


def test_softplus_offset_is_added_to_the_output(act):
    a = np.random.default_rng(6).normal(scale=5.0, size=(7, 3)).astype(np.float32)
    y, slope = act.softplus_forward(a)
    y_off, slope_off = act.softplus_forward(a, 1e-3)
    np.testing.assert_array_equal(y_off, y + np.float32(1e-3))
    np.testing.assert_array_equal(slope_off, slope)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)), elements=extreme),
    st.floats(-1e4, 1e4),
)
def test_logsumexp_is_finite_bounded_and_shift_equivariant(act, a, c):
    lse = act.logsumexp_forward(a)[0]
    assert np.all(np.isfinite(lse)) and lse.shape == a.shape[:1]
    assert np.all(lse >= a.max(axis=-1)) and np.all(lse <= a.max(axis=-1) + np.log(a.shape[-1]) + 1e-9)
    np.testing.assert_allclose(act.logsumexp_forward(a + c)[0], lse + c, rtol=1e-9, atol=1e-9)
