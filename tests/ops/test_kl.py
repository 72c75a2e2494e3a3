"""The maths of ops/kl.py, held for the readable module and its compiled twin alike."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm

from minivrnn.fast import kl as fast_kl
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import kl as ops_kl

NAMES = ("mu_q", "sigma_q", "mu_p", "sigma_p")


@pytest.fixture(params=[ops_kl, fast_kl], ids=["ops", "fast"], scope="module")
def kl(request):
    return request.param


def _inputs(rng, lead, Z):
    return {
        "mu_q": rng.normal(size=(*lead, Z)),
        "sigma_q": rng.uniform(0.3, 2.0, size=(*lead, Z)),
        "mu_p": rng.normal(size=(*lead, Z)),
        "sigma_p": rng.uniform(0.3, 2.0, size=(*lead, Z)),
    }


@pytest.mark.parametrize("lead, Z", [((1,), 1), ((5,), 3), ((2, 3), 1), ((3, 1, 2), 4), ((), 2)])
def test_gradients(kl, lead, Z):
    def forward(**inputs):
        return kl.kl_gaussian_forward(**inputs)[0]

    def backward(dkl, **inputs):
        return dict(zip(NAMES, kl.kl_gaussian_backward(dkl, kl.kl_gaussian_forward(**inputs)[1])))

    errors = gradcheck(forward, backward, _inputs(np.random.default_rng(0), lead, Z))
    assert max(errors.values()) < 1e-6, errors


def test_closed_form_by_hand(kl):
    # KL(N(0, 1) || N(1, 2^2)) = log 2 + (1 + 1) / (2 * 4) - 1/2 = log 2 - 1/4
    value = kl.kl_gaussian_forward(np.zeros(1), np.ones(1), np.ones(1), np.full(1, 2.0))[0]
    np.testing.assert_allclose(value, np.log(2) - 0.25, rtol=1e-14)


def test_matches_the_textbook_closed_form(kl):
    mu_q, sigma_q, mu_p, sigma_p = _inputs(np.random.default_rng(1), (11,), 5).values()
    textbook = (np.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5).sum(-1)
    np.testing.assert_allclose(kl.kl_gaussian_forward(mu_q, sigma_q, mu_p, sigma_p)[0], textbook, rtol=1e-10)


def test_matches_a_monte_carlo_estimate(kl):
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated with n samples, within 5 standard errors."""
    rng = np.random.default_rng(2)
    mu_q, sigma_q, mu_p, sigma_p = _inputs(rng, (), 3).values()
    n = 200_000
    z = mu_q + sigma_q * rng.standard_normal((n, 3))  # (n, Z) samples from q
    log_ratio = (norm.logpdf(z, mu_q, sigma_q) - norm.logpdf(z, mu_p, sigma_p)).sum(axis=-1)  # (n,)
    standard_error = log_ratio.std(ddof=1) / np.sqrt(n)
    value = kl.kl_gaussian_forward(mu_q, sigma_q, mu_p, sigma_p)[0]
    assert abs(value - log_ratio.mean()) < 5 * standard_error


def test_bad_shapes_and_dtypes_name_the_argument(kl):
    a = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"sigma_p: expected shape \(\.\.\., Z\) = \(4, 3\), got \(4, 2\)"):
        kl.kl_gaussian_forward(a, a, a, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"mu_p: expected shape \(\.\.\., Z\) = \(4, 3\), got \(2, 4, 3\)"):
        kl.kl_gaussian_forward(a, a, np.ones((2, 4, 3)), a)
    with pytest.raises(ValueError, match=r"sigma_q: expected dtype float64 \(the dtype of mu_q\), got float32"):
        kl.kl_gaussian_forward(a, a.astype(np.float32), a, a)


# Extreme but valid inputs: |mu| <= 1e4 and 1e-4 <= sigma <= 1e4. Then sigma_q / sigma_p <= 1e8, so
# expm1(2 v) <= 1e16, t^2 <= 4e16, and the gradients stay below ~1e21: far inside float32's range
# (3.4e38), so both dtypes use the full range.
_big = st.floats(-1e4, 1e4, width=32)
_sigma = st.floats(float(np.float32(1e-4)), 1e4, width=32)  # float32's nearest value to the 1e-4 floor


@st.composite
def _pairs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))  # (N, Z)
    mu_q, mu_p = draw(arrays(dtype, shape, elements=_big)), draw(arrays(dtype, shape, elements=_big))
    sigma_q = draw(arrays(dtype, shape, elements=_sigma))
    sigma_p = draw(arrays(dtype, shape, elements=_sigma))
    return {"mu_q": mu_q, "sigma_q": sigma_q, "mu_p": mu_p, "sigma_p": sigma_p}


@given(_pairs())
def test_non_negative_finite_and_shapes_preserved(kl, inputs):
    value, cache = kl.kl_gaussian_forward(**inputs)
    assert value.shape == inputs["mu_q"].shape[:-1] and value.dtype == inputs["mu_q"].dtype
    assert np.all(np.isfinite(value)) and np.all(value >= 0)
    for name, g in zip(NAMES, kl.kl_gaussian_backward(np.ones_like(value), cache)):
        assert g.shape == inputs[name].shape and np.all(np.isfinite(g)), name


@given(_pairs(), st.floats(0.01, 100), st.floats(1.01, 100), st.booleans())
def test_zero_if_and_only_if_equal(kl, inputs, gap, ratio, shrink):
    def _forward(**args):
        return kl.kl_gaussian_forward(**args)[0]

    mu, sigma = inputs["mu_q"], inputs["sigma_q"]
    assert np.all(_forward(mu_q=mu, sigma_q=sigma, mu_p=mu, sigma_p=sigma) == 0)
    # Move p's mean in one coordinate by gap times (sigma + 1e-3 |mu|), a step that survives rounding
    # in float32; the KL is then at least its t^2 / 2 term.
    mu_p = mu.copy()
    mu_p[:, 0] += gap * (sigma[:, 0] + 1e-3 * np.abs(mu[:, 0]))
    t = (mu.astype(np.float64) - mu_p) / sigma  # the gap actually stored, after rounding mu_p
    value = _forward(mu_q=mu, sigma_q=sigma, mu_p=mu_p, sigma_p=sigma)
    assert np.all(value >= 0.5 * (t**2).sum(axis=-1) * (1 - 1e-5)) and np.all(value > 0)
    # Scale p's standard deviation in one coordinate by a factor of at least 1.01 (or 1 / 1.01).
    sigma_p = sigma.copy()
    sigma_p[:, 0] = sigma_p[:, 0] / ratio if shrink else sigma_p[:, 0] * ratio
    assert np.all(_forward(mu_q=mu, sigma_q=sigma, mu_p=mu, sigma_p=sigma_p) > 0)
