import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minivrnn.gradcheck import gradcheck
from minivrnn.ops.reparam import reparam_backward, reparam_forward

NAMES = ("mu", "sigma", "eps")


def _forward(mu, sigma, eps):
    return reparam_forward(mu, sigma, eps)[0]


def _backward(dz, mu, sigma, eps):
    return dict(zip(NAMES, reparam_backward(dz, reparam_forward(mu, sigma, eps)[1])))


@pytest.mark.parametrize("shape", [(1, 1), (4, 3), (2, 3, 1), (2,)])
def test_gradients(shape):
    rng = np.random.default_rng(0)
    inputs = {"mu": rng.normal(size=shape), "sigma": rng.uniform(0.5, 2, shape)}
    inputs["eps"] = rng.normal(size=shape)
    errors = gradcheck(_forward, _backward, inputs)
    assert max(errors.values()) < 1e-6, errors


def test_samples_have_mean_mu_and_variance_sigma_squared():
    """With eps ~ N(0, I), z ~ N(mu, sigma^2): moments within 5 standard errors for n samples."""
    mu = np.array([-1.0, 0.0, 3.0])
    sigma = np.array([0.5, 2.0, 3.0])  # sigma != sigma^2, so std = sigma^2 (or = 1) would fail
    n = 100_000
    eps = np.random.default_rng(1).standard_normal((n, 3))
    z = reparam_forward(np.broadcast_to(mu, (n, 3)), np.broadcast_to(sigma, (n, 3)), eps)[0]  # (n, Z)
    assert np.all(np.abs(z.mean(axis=0) - mu) < 5 * sigma / np.sqrt(n))
    assert np.all(np.abs(z.var(axis=0, ddof=1) - sigma**2) < 5 * sigma**2 * np.sqrt(2 / (n - 1)))


def test_backward_is_the_closed_form_and_does_not_alias():
    mu, sigma, eps = np.zeros((2, 3)), np.full((2, 3), 2.0), np.arange(6.0).reshape(2, 3)
    z, cache = reparam_forward(mu, sigma, eps)
    np.testing.assert_array_equal(z, 2 * eps)
    dz = np.ones_like(z)
    dmu, dsigma, deps = reparam_backward(dz, cache)  # dz/dmu = 1, dz/dsigma = eps, dz/deps = sigma
    np.testing.assert_array_equal(dmu, dz)
    np.testing.assert_array_equal(dsigma, eps)
    np.testing.assert_array_equal(deps, sigma)
    dmu += 1.0
    assert np.all(dz == 1.0)


def test_float32_in_float32_out():
    a = np.ones((2, 3), dtype=np.float32)
    z, cache = reparam_forward(a, a, a)
    assert z.dtype == np.float32
    assert all(g.dtype == np.float32 for g in reparam_backward(z, cache))


def test_bad_shapes_and_dtypes_name_the_argument():
    a = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"eps: expected shape \(\.\.\., Z\) = \(4, 3\), got \(4, 2\)"):
        reparam_forward(a, a, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"sigma: expected dtype float64 \(the dtype of mu\), got float32"):
        reparam_forward(a, a.astype(np.float32), a)


@given(
    st.sampled_from([np.float32, np.float64]),
    st.tuples(st.integers(1, 3), st.integers(1, 4)),
    st.data(),
)
def test_shapes_preserved_and_finite_for_extreme_inputs(dtype, shape, data):
    # |mu| <= 1e4, 1e-4 <= sigma <= 1e4, |eps| <= 10: |z| <= 1.1e5, representable in float32.
    mu = data.draw(arrays(dtype, shape, elements=st.floats(-1e4, 1e4, width=32)))
    sigma = data.draw(arrays(dtype, shape, elements=st.floats(float(np.float32(1e-4)), 1e4, width=32)))
    eps = data.draw(arrays(dtype, shape, elements=st.floats(-10, 10, width=32)))
    z, cache = reparam_forward(mu, sigma, eps)
    assert z.shape == shape and z.dtype == dtype and np.all(np.isfinite(z))
    assert all(g.shape == shape for g in reparam_backward(np.ones_like(z), cache))
