"""The maths of ops/gmm.py, held for the readable module and its compiled twin alike."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import log_softmax, logsumexp
from scipy.stats import norm

from minivrnn.fast import gaussian as fast_gaussian
from minivrnn.fast import gmm as fast_gmm
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import gaussian as ops_gaussian
from minivrnn.ops import gmm as ops_gmm

NAMES = ("x", "logits", "mu", "sigma")


@pytest.fixture(params=[(ops_gmm, ops_gaussian), (fast_gmm, fast_gaussian)], ids=["ops", "fast"], scope="module")
def modules(request):
    return request.param


@pytest.fixture(scope="module")
def gmm(modules):
    return modules[0]


def _inputs(rng, lead, K, D):
    return {
        "x": rng.normal(size=(*lead, D)),
        "logits": rng.normal(size=(*lead, K)),
        "mu": rng.normal(size=(*lead, K, D)),
        "sigma": rng.uniform(0.5, 2.0, size=(*lead, K, D)),
    }


@pytest.mark.parametrize(
    "lead, K, D", [((1,), 1, 1), ((4,), 3, 2), ((2, 3), 1, 3), ((3, 1), 2, 1), ((2, 1, 2), 4, 3), ((), 2, 2)]
)
def test_gradients(gmm, lead, K, D):
    def forward(**inputs):
        return gmm.gmm_logpdf_forward(**inputs)[0]

    def backward(dlogp, **inputs):
        return dict(zip(NAMES, gmm.gmm_logpdf_backward(dlogp, gmm.gmm_logpdf_forward(**inputs)[1])))

    errors = gradcheck(forward, backward, _inputs(np.random.default_rng(0), lead, K, D))
    assert max(errors.values()) < 1e-6, errors


def test_matches_scipy(gmm):
    x, logits, mu, sigma = _inputs(np.random.default_rng(1), (5, 2), 3, 4).values()
    logits[0, 0] *= 30.0  # some components nearly switched off
    sigma[..., 0, 0] = 1e-4  # the floor: used as given, never floored again
    log_n = norm.logpdf(x[..., None, :], mu, sigma).sum(axis=-1)  # (..., K)
    expected = logsumexp(log_softmax(logits, axis=-1) + log_n, axis=-1)
    np.testing.assert_allclose(gmm.gmm_logpdf_forward(x, logits, mu, sigma)[0], expected, rtol=1e-10)


def test_bad_shapes_and_dtypes_name_the_argument(gmm):
    f = gmm.gmm_logpdf_forward
    x, logits, mu, sigma = _inputs(np.random.default_rng(6), (4,), 3, 2).values()
    with pytest.raises(ValueError, match=r"mu: expected shape \(\.\.\., K, D\) = \(4, 3, 2\), got \(4, 2, 2\)"):
        f(x, logits, mu[:, :2], sigma)
    with pytest.raises(ValueError, match=r"logits: expected shape \(\.\.\., K\) = \(4, \?\), got \(5, 3\)"):
        f(x, np.zeros((5, 3)), mu, sigma)
    with pytest.raises(ValueError, match=r"sigma: expected shape \(\.\.\., K, D\) = \(4, 3, 2\), got \(4, 3\)"):
        f(x, logits, mu, sigma[..., 0])
    with pytest.raises(ValueError, match=r"logits: expected dtype float64 \(the dtype of x\), got float32"):
        f(x, logits.astype(np.float32), mu, sigma)


# Extreme but valid inputs: |x|, |mu|, |logits| <= 1e4 and 1e-4 <= sigma <= 1e4. Every intermediate stays
# below ~1e21 (see test_gaussian.py), far inside float32's range, so both dtypes use the full range.
_big = st.floats(-1e4, 1e4, width=32)
_sigma = st.floats(float(np.float32(1e-4)), 1e4, width=32)  # float32's nearest value to the 1e-4 floor


@st.composite
def _mixtures(draw, dtypes=(np.float32, np.float64)):
    dtype = draw(st.sampled_from(dtypes))
    N, K, D = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    return {
        "x": draw(arrays(dtype, (N, D), elements=_big)),
        "logits": draw(arrays(dtype, (N, K), elements=_big)),
        "mu": draw(arrays(dtype, (N, K, D), elements=_big)),
        "sigma": draw(arrays(dtype, (N, K, D), elements=_sigma)),
    }


@given(_mixtures())
def test_finite_and_shapes_preserved_for_extreme_inputs(gmm, inputs):
    logp, cache = gmm.gmm_logpdf_forward(**inputs)
    assert logp.shape == inputs["x"].shape[:-1] and logp.dtype == inputs["x"].dtype
    assert np.all(np.isfinite(logp))
    for name, g in zip(NAMES, gmm.gmm_logpdf_backward(np.ones_like(logp), cache)):
        assert g.shape == inputs[name].shape and g.dtype == logp.dtype, name
        assert np.all(np.isfinite(g)), name


@given(_mixtures(), st.floats(-1e4, 1e4))
def test_one_component_is_the_gaussian(modules, inputs, logit):
    gmm, gaussian = modules
    x, mu, sigma = inputs["x"], inputs["mu"][:, :1], inputs["sigma"][:, :1]
    logits = np.full((x.shape[0], 1), logit, dtype=x.dtype)  # any logit: softmax of one value is 1
    expected = gaussian.gaussian_logpdf_forward(x, mu[:, 0], sigma[:, 0])[0]
    np.testing.assert_allclose(gmm.gmm_logpdf_forward(x, logits, mu, sigma)[0], expected, rtol=1e-6)


@given(_mixtures((np.float64,)), st.randoms(use_true_random=False))
def test_invariant_to_permuting_the_components(gmm, inputs, random):
    K = inputs["logits"].shape[-1]
    order = random.sample(range(K), K)
    permuted = {**inputs, "logits": inputs["logits"][:, order]}
    permuted.update(mu=inputs["mu"][:, order], sigma=inputs["sigma"][:, order])
    # Only the order of the sums changes: log pi moves by rounding at the scale of the largest logit.
    atol = 1e-12 * (1 + np.abs(inputs["logits"]).max())
    np.testing.assert_allclose(gmm.gmm_logpdf_forward(**permuted)[0], gmm.gmm_logpdf_forward(**inputs)[0],
                               rtol=1e-12, atol=atol)


@given(_mixtures((np.float64,)), st.floats(-1e4, 1e4))
def test_invariant_to_shifting_all_logits(gmm, inputs, c):
    shifted = {**inputs, "logits": inputs["logits"] + c}
    # logits + c carries an absolute rounding error of ~1e-16 * (|c| + |logits|) into log pi.
    atol = 1e-12 * (1 + abs(c) + np.abs(inputs["logits"]).max())
    np.testing.assert_allclose(gmm.gmm_logpdf_forward(**shifted)[0], gmm.gmm_logpdf_forward(**inputs)[0],
                               rtol=1e-12, atol=atol)
