"""The maths of ops/pen.py, held for the readable module and its compiled twin alike."""
from functools import partial

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.special import expit, logsumexp

from minivrnn.fast import pen as fast_pen
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import pen as ops_pen

NAMES = ("xy", "logits", "mu", "sigma", "rho")


@pytest.fixture(params=[ops_pen, fast_pen], ids=["ops", "fast"], scope="module")
def pen(request):
    return request.param


def mixture(rng, lead, K, rho_max=0.9):
    """Random valid mixture inputs {xy, logits, mu, sigma, rho} with leading shape ``lead``."""
    return {
        "xy": rng.normal(size=lead + (2,)),
        "logits": rng.normal(scale=2.0, size=lead + (K,)),
        "mu": rng.normal(size=lead + (K, 2)),
        "sigma": rng.uniform(0.3, 2.0, size=lead + (K, 2)),
        "rho": rng.uniform(-rho_max, rho_max, size=lead + (K,)),
    }


def gmm(pen, **inputs):
    return pen.bivariate_gmm_logpdf_forward(**inputs)[0]


def gmm_grads(pen, dlogp, **inputs):
    grads = pen.bivariate_gmm_logpdf_backward(dlogp, pen.bivariate_gmm_logpdf_forward(**inputs)[1])
    return dict(zip(NAMES, grads))


def _logsumexp(a):
    m = a.max()
    return m + np.log(np.exp(a - m).sum())


# A slow route to the same numbers, one row and one component at a time in float64: the bivariate normal
# written with its 2x2 covariance matrix (log-determinant and inverse), and its gradients from matrix calculus
# rather than from the chain rule through (u, v, Zq) that both modules follow.

def ref_bernoulli_logpmf(e, logit):
    return np.asarray(e, dtype=np.float64) * logit - np.logaddexp(0.0, np.asarray(logit, dtype=np.float64))


def covariance(s1, s2, r):
    return np.array([[s1 * s1, r * s1 * s2], [r * s1 * s2, s2 * s2]])


def ref_bivariate_normal_logpdf(xy, mu, s1, s2, r):
    """log N2 = -log(2 pi) - log det(S) / 2 - d^T S^-1 d / 2 with d = xy - mu."""
    S = covariance(s1, s2, r)
    d = np.asarray(xy, dtype=np.float64) - mu
    return -np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(S)) - 0.5 * d @ np.linalg.solve(S, d)


def ref_log_terms(xy, logits, mu, sigma, rho):
    """log pi_k + log N2_k for one row: (K,)."""
    log_pi = logits - _logsumexp(logits)
    log_n = [ref_bivariate_normal_logpdf(xy, mu[k], sigma[k, 0], sigma[k, 1], rho[k]) for k in range(len(rho))]
    return log_pi + np.array(log_n)


def ref_bivariate_gmm_logpdf(xy, logits, mu, sigma, rho):
    """Row by row: log-sum-exp over k of log pi_k + log N2_k."""
    args = [np.asarray(a, dtype=np.float64) for a in (xy, logits, mu, sigma, rho)]
    lead = args[0].shape[:-1]
    rows = [a.reshape((-1,) + a.shape[len(lead):]) for a in args]
    out = [_logsumexp(ref_log_terms(*row)) for row in zip(*rows)]
    return np.array(out).reshape(lead)


def ref_bivariate_gmm_logpdf_grads(xy, logits, mu, sigma, rho):
    """Gradients of the summed log-density, by matrix calculus; returns (dxy, dlogits, dmu, dsigma, drho).

    Per component, with d = xy - mu_k and P = S_k^-1: d log N2 / d mu = P d, and
    d log N2 / d S = (P d d^T P - P) / 2, chained to (s1, s2, rho) through the entries of S.
    The weight of component k is its responsibility w_k = softmax_k(log pi_k + log N2_k).
    """
    args = [np.asarray(a, dtype=np.float64) for a in (xy, logits, mu, sigma, rho)]
    grads = [np.zeros_like(a) for a in args]
    lead = args[0].shape[:-1]
    for index in np.ndindex(lead):
        x, logit, m, s, r = (a[index] for a in args)
        terms = ref_log_terms(x, logit, m, s, r)
        w = np.exp(terms - _logsumexp(terms))  # (K,) responsibilities
        pi = np.exp(logit - _logsumexp(logit))  # (K,) mixture weights
        grads[1][index] = w - pi
        for k in range(len(r)):
            s1, s2 = s[k]
            P = np.linalg.inv(covariance(s1, s2, r[k]))
            Pd = P @ (x - m[k])
            dS = 0.5 * (np.outer(Pd, Pd) - P)  # d log N2 / d S, symmetric
            dS_ds1 = np.array([[2 * s1, r[k] * s2], [r[k] * s2, 0.0]])
            dS_ds2 = np.array([[0.0, r[k] * s1], [r[k] * s1, 2 * s2]])
            dS_drho = np.array([[0.0, s1 * s2], [s1 * s2, 0.0]])
            grads[0][index] += -w[k] * Pd
            grads[2][index][k] = w[k] * Pd
            grads[3][index][k] = w[k] * np.array([np.sum(dS * dS_ds1), np.sum(dS * dS_ds2)])
            grads[4][index][k] = w[k] * np.sum(dS * dS_drho)
    return tuple(grads)


# a. gradients by central differences -------------------------------------------------------------------

@pytest.mark.parametrize("lead, K", [((), 1), ((1,), 1), ((1, 1), 3), ((4,), 3), ((2, 3), 2)])
def test_gmm_gradients(pen, lead, K):
    inputs = mixture(np.random.default_rng(K + len(lead)), lead, K)
    errors = gradcheck(partial(gmm, pen), partial(gmm_grads, pen), inputs)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("K", [1, 3])
def test_gmm_gradients_at_strong_correlation(pen, K):
    inputs = mixture(np.random.default_rng(5), (3,), K)
    inputs["rho"] = np.random.default_rng(6).choice([-0.95, 0.95], size=(3, K))
    errors = gradcheck(partial(gmm, pen), partial(gmm_grads, pen), inputs)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("shape", [(1,), (2, 5)])
def test_bernoulli_gradient(pen, shape):
    rng = np.random.default_rng(7)
    e = rng.integers(0, 2, size=shape).astype(np.float64)
    inputs = {"e": e, "logit": rng.normal(scale=3.0, size=shape)}

    def forward(e, logit):
        return pen.bernoulli_logpmf_forward(e, logit)[0]

    def backward(dlogp, e, logit):
        return {"logit": pen.bernoulli_logpmf_backward(dlogp, pen.bernoulli_logpmf_forward(e, logit)[1])}

    assert gradcheck(forward, backward, inputs, wrt=["logit"])["logit"] < 1e-6


# b. forward against scipy.stats -----------------------------------------------------------------------

def test_gmm_matches_scipy(pen):
    inputs = mixture(np.random.default_rng(8), (6,), 3, rho_max=0.99)
    x, logits, mu, sigma, rho = (inputs[k] for k in NAMES)
    expected = []
    for n in range(6):
        log_n = [
            stats.multivariate_normal.logpdf(x[n], mu[n, k], covariance(*sigma[n, k], rho[n, k]))
            for k in range(3)
        ]
        expected.append(logsumexp(logits[n] - logsumexp(logits[n]) + np.array(log_n)))
    np.testing.assert_allclose(gmm(pen, **inputs), expected, rtol=1e-9)


def test_bernoulli_matches_scipy(pen):
    rng = np.random.default_rng(9)
    e = rng.integers(0, 2, size=(4, 5)).astype(np.float64)
    logit = rng.normal(scale=4.0, size=(4, 5))
    expected = stats.bernoulli.logpmf(e, expit(logit))
    np.testing.assert_allclose(pen.bernoulli_logpmf_forward(e, logit)[0], expected, rtol=1e-9, atol=1e-14)


# c. kernels against the slow references -----------------------------------------------------------------

def test_gmm_forward_and_backward_match_the_reference(pen):
    inputs = mixture(np.random.default_rng(10), (3, 4), 3, rho_max=0.99)
    inputs["mu"] = np.asfortranarray(inputs["mu"])  # a non-contiguous input must give the same answer
    np.testing.assert_allclose(gmm(pen, **inputs), ref_bivariate_gmm_logpdf(**inputs), rtol=1e-10)
    got = gmm_grads(pen, np.ones((3, 4)), **inputs)
    for name, expected in zip(NAMES, ref_bivariate_gmm_logpdf_grads(**inputs)):
        np.testing.assert_allclose(got[name], expected, rtol=1e-10, atol=1e-12, err_msg=name)


def test_bernoulli_matches_the_reference(pen):
    rng = np.random.default_rng(11)
    e, logit = rng.integers(0, 2, size=(7, 5)).astype(np.float64), rng.normal(scale=20.0, size=(7, 5))
    expected = ref_bernoulli_logpmf(e, logit)
    np.testing.assert_allclose(pen.bernoulli_logpmf_forward(e, logit)[0], expected, rtol=1e-10)


# float32 and input checks -------------------------------------------------------------------------------

def test_float32_in_float32_out_and_agrees_with_float64(pen):
    rng = np.random.default_rng(12)
    i64 = mixture(rng, (5,), 3)
    i32 = {k: v.astype(np.float32) for k, v in i64.items()}
    logp32, cache = pen.bivariate_gmm_logpdf_forward(**i32)
    grads32 = pen.bivariate_gmm_logpdf_backward(np.ones(5, np.float32), cache)
    assert logp32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    np.testing.assert_allclose(logp32, gmm(pen, **i64), rtol=1e-5, atol=1e-5)
    grads64 = gmm_grads(pen, np.ones(5), **i64)
    for name, g32 in zip(NAMES, grads32):
        np.testing.assert_allclose(g32, grads64[name], rtol=1e-4, atol=1e-5, err_msg=name)
    e, logit = np.array([0.0, 1.0, 1.0], np.float32), np.array([-3.0, 0.5, 40.0], np.float32)
    lp32, bcache = pen.bernoulli_logpmf_forward(e, logit)
    assert lp32.dtype == pen.bernoulli_logpmf_backward(np.ones(3, np.float32), bcache).dtype == np.float32
    np.testing.assert_allclose(lp32, ref_bernoulli_logpmf(e, logit.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_bad_shapes_and_dtypes_name_the_argument(pen):
    good = mixture(np.random.default_rng(0), (4,), 3)
    for name, bad, message in [
        ("xy", np.zeros((4, 3)), r"xy: expected shape \(\.\.\., 2\)"),
        ("mu", np.zeros((4, 3)), r"mu: expected shape \(\.\.\., K, 2\) = \(4, 3, 2\), got \(4, 3\)"),
        ("sigma", np.ones((4, 2, 2)), r"sigma: expected shape \(\.\.\., K, 2\) = \(4, 3, 2\)"),
        ("rho", np.zeros((5, 3)), r"rho: expected shape \(\.\.\., K\) = \(4, 3\)"),
        ("logits", good["logits"].astype(np.float32), r"logits: expected dtype float64"),
        ("sigma", np.zeros((4, 3, 2)), r"sigma: expected standard deviations > 0, got a minimum of 0\.0"),
        ("sigma", np.full((4, 3, 2), np.nan), r"sigma: expected standard deviations > 0"),
        ("rho", np.ones((4, 3)), r"rho: expected correlations strictly inside \(-1, 1\), got 1\.0"),
    ]:
        with pytest.raises(ValueError, match=message):
            pen.bivariate_gmm_logpdf_forward(**{**good, name: bad})
    _, cache = pen.bivariate_gmm_logpdf_forward(**good)
    with pytest.raises(ValueError, match=r"dlogp: expected shape \(\.\.\.\) = \(4,\), got \(3,\)"):
        pen.bivariate_gmm_logpdf_backward(np.ones(3), cache)
    with pytest.raises(ValueError, match=r"logit: expected shape \(\.\.\.\) = \(2,\), got \(3,\)"):
        pen.bernoulli_logpmf_forward(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="e: expected dtype float32 or float64, got int64"):
        pen.bernoulli_logpmf_forward(np.zeros(2, np.int64), np.zeros(2))
    with pytest.raises(ValueError, match=r"logits: expected at least one mixture component"):
        pen.bivariate_gmm_logpdf_forward(**mixture(np.random.default_rng(0), (4,), 0))


# d. properties --------------------------------------------------------------------------------------------

finite = st.floats(-100, 100)


@given(finite, finite, finite, finite, st.floats(1e-2, 1e2), st.floats(1e-2, 1e2), finite)
def test_one_uncorrelated_component_is_two_independent_gaussians(pen, x, y, m1, m2, s1, s2, logit):
    inputs = {"xy": np.array([x, y]), "logits": np.array([logit]), "mu": np.array([[m1, m2]]),
              "sigma": np.array([[s1, s2]]), "rho": np.array([0.0])}
    expected = stats.norm.logpdf(x, m1, s1) + stats.norm.logpdf(y, m2, s2)
    np.testing.assert_allclose(gmm(pen, **inputs), expected, rtol=1e-10, atol=1e-10)


@given(st.integers(1, 5).flatmap(lambda K: st.tuples(st.permutations(range(K)), st.integers(0, 2**32 - 1))),
       st.floats(-1e3, 1e3))
def test_permuting_components_and_shifting_logits_change_nothing(pen, perm_and_seed, c):
    perm, seed = perm_and_seed
    inputs = mixture(np.random.default_rng(seed), (3,), len(perm))
    expected = gmm(pen, **inputs)
    permuted = {k: v if k == "xy" else v[:, list(perm)] for k, v in inputs.items()}
    np.testing.assert_allclose(gmm(pen, **permuted), expected, rtol=1e-12, atol=1e-12)
    shifted = {**inputs, "logits": inputs["logits"] + c}
    np.testing.assert_allclose(gmm(pen, **shifted), expected, rtol=1e-9, atol=1e-9)


def extreme(shape, low, high):
    return arrays(np.float64, shape, elements=st.floats(low, high))


@given(st.integers(1, 3).flatmap(lambda K: st.tuples(
    extreme((2, 2), -1e2, 1e2), extreme((2, K), -1e4, 1e4), extreme((2, K, 2), -1e2, 1e2),
    extreme((2, K, 2), 1e-4, 1e2), extreme((2, K), -1 + 1e-6, 1 - 1e-6), extreme((2,), -1e4, 1e4))))
def test_finite_for_extreme_valid_inputs(pen, arrays_):
    xy, logits, mu, sigma, rho, pen_logit = arrays_
    logp, cache = pen.bivariate_gmm_logpdf_forward(xy, logits, mu, sigma, rho)
    assert logp.shape == (2,) and np.all(np.isfinite(logp))
    for g, x in zip(pen.bivariate_gmm_logpdf_backward(np.ones(2), cache), (xy, logits, mu, sigma, rho)):
        assert g.shape == x.shape and np.all(np.isfinite(g))
    for e in (np.zeros(2), np.ones(2)):
        lp, bcache = pen.bernoulli_logpmf_forward(e, pen_logit)
        assert np.all(np.isfinite(lp)) and np.all(lp <= 0)
        assert np.all(np.isfinite(pen.bernoulli_logpmf_backward(np.ones(2), bcache)))


@given(st.lists(st.integers(1, 3), max_size=3).map(tuple), st.integers(1, 4))
def test_shapes_preserved(pen, lead, K):
    inputs = mixture(np.random.default_rng(0), lead, K)
    logp, cache = pen.bivariate_gmm_logpdf_forward(**inputs)
    assert logp.shape == lead
    grads = pen.bivariate_gmm_logpdf_backward(np.ones(lead), cache)
    assert [g.shape for g in grads] == [inputs[k].shape for k in NAMES]
    lp, bcache = pen.bernoulli_logpmf_forward(np.ones(lead), np.zeros(lead))
    assert lp.shape == pen.bernoulli_logpmf_backward(np.ones(lead), bcache).shape == lead
