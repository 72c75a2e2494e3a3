"""The maths of ops/gaussian.py, held for the readable module and its compiled twin alike."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm

from minivrnn.fast import gaussian as fast_gaussian
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import gaussian as ops_gaussian


@pytest.fixture(params=[ops_gaussian, fast_gaussian], ids=["ops", "fast"], scope="module")
def gaussian(request):
    return request.param


def _inputs(rng, lead, D):
    return {
        "x": rng.normal(size=(*lead, D)),
        "mu": rng.normal(size=(*lead, D)),
        "sigma": rng.uniform(0.5, 2.0, size=(*lead, D)),
    }


@pytest.mark.parametrize("lead, D", [((1,), 1), ((5,), 3), ((2, 3), 1), ((3, 1, 2), 4), ((), 2)])
def test_gradients(gaussian, lead, D):
    def forward(x, mu, sigma):
        return gaussian.gaussian_logpdf_forward(x, mu, sigma)[0]

    def backward(dlogp, x, mu, sigma):
        dx, dmu, dsigma = gaussian.gaussian_logpdf_backward(dlogp, gaussian.gaussian_logpdf_forward(x, mu, sigma)[1])
        return {"x": dx, "mu": dmu, "sigma": dsigma}

    errors = gradcheck(forward, backward, _inputs(np.random.default_rng(0), lead, D))
    assert max(errors.values()) < 1e-6, errors


def test_matches_scipy(gaussian):
    inputs = _inputs(np.random.default_rng(1), (4, 3), 5)
    inputs["sigma"][..., 0] = 1e-4  # the floor: used as given, never floored again
    expected = norm.logpdf(inputs["x"], inputs["mu"], inputs["sigma"]).sum(axis=-1)
    np.testing.assert_allclose(gaussian.gaussian_logpdf_forward(**inputs)[0], expected, rtol=1e-10)


def test_log_2pi():
    assert ops_gaussian.LOG_2PI == pytest.approx(1.8378770664093453, rel=1e-15)


def test_backward_broadcasts_x_over_mixture_components(gaussian):
    # gmm's use: x (..., 1, D) against mu, sigma (..., K, D). Two identical components must each get exactly
    # the gradients of the same-shape call.
    rng = np.random.default_rng(2)
    x, mu, sigma = (_inputs(rng, (7,), 6)[k] for k in ("x", "mu", "sigma"))
    g = rng.normal(size=7)
    dx, dmu, dsigma = gaussian.gaussian_logpdf_backward(g, (x, mu, sigma))
    twice = lambda a: np.stack([a, a], axis=1)  # noqa: E731  (7, 2, ...)
    dx2, dmu2, dsigma2 = gaussian.gaussian_logpdf_backward(twice(g), (x[:, None, :], twice(mu), twice(sigma)))
    for k in range(2):
        np.testing.assert_allclose(dx2[:, k], dx, rtol=1e-13)
        np.testing.assert_allclose(dmu2[:, k], dmu, rtol=1e-13)
        np.testing.assert_allclose(dsigma2[:, k], dsigma, rtol=1e-13)


def test_bad_shapes_and_dtypes_name_the_argument(gaussian):
    f = gaussian.gaussian_logpdf_forward
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"mu: expected shape \(\.\.\., D\) = \(4, 3\), got \(4, 2\)"):
        f(x, np.zeros((4, 2)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"sigma: expected shape \(\.\.\., D\) = \(4, 3\), got \(5, 3\)"):
        f(x, x, np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"sigma: expected dtype float64 \(the dtype of x\), got float32"):
        f(x, x, np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="x: expected dtype float32 or float64, got int64"):
        f(np.zeros((4, 3), dtype=np.int64), x, x)


# Extreme but valid inputs: |x|, |mu| <= 1e4 and 1e-4 <= sigma <= 1e4. Then |u| <= 2e8, u^2 <= 4e16 and
# every gradient stays below ~1e21, all far inside float32's range (3.4e38): both dtypes use the full range.
_big = st.floats(-1e4, 1e4, width=32)
_sigma = st.floats(float(np.float32(1e-4)), 1e4, width=32)  # float32's nearest value to the 1e-4 floor


@st.composite
def _extreme_inputs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))  # (N, D)
    return {
        "x": draw(arrays(dtype, shape, elements=_big)),
        "mu": draw(arrays(dtype, shape, elements=_big)),
        "sigma": draw(arrays(dtype, shape, elements=_sigma)),
    }


@given(_extreme_inputs())
def test_finite_shapes_preserved_and_peaked_at_the_mean(gaussian, inputs):
    logp, cache = gaussian.gaussian_logpdf_forward(**inputs)
    assert logp.shape == inputs["x"].shape[:-1] and logp.dtype == inputs["x"].dtype
    assert np.all(np.isfinite(logp))
    at_mean = gaussian.gaussian_logpdf_forward(inputs["mu"], inputs["mu"], inputs["sigma"])[0]
    assert np.all(logp <= at_mean + 1e-6 * np.abs(at_mean))  # the density is largest at x = mu
    for name, g in zip(("x", "mu", "sigma"), gaussian.gaussian_logpdf_backward(np.ones_like(logp), cache)):
        assert g.shape == inputs[name].shape and g.dtype == logp.dtype and np.all(np.isfinite(g)), name
