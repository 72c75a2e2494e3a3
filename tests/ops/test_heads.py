"""The maths of ops/heads.py, held for the readable module and its compiled twin alike."""
import numpy as np
import pytest

from minivrnn.fast import heads as fast_heads
from minivrnn.gradcheck import gradcheck
from minivrnn.ops import heads as ops_heads


@pytest.fixture(params=[ops_heads, fast_heads], ids=["ops", "fast"], scope="module")
def heads(request):
    return request.param


def _gaussian_head_params(rng, name, F, Z):
    return ops_heads.init_heads(rng, name, F, {"mu": Z, "sigma": Z}, np.float64)


def test_gaussian_head_is_the_two_linear_heads_with_a_softplus_floor(heads):
    # eqs. (4) and (8): mu = f W_mu + b_mu, sigma = softplus(f W_sig + b_sig) + sigma_min, here row by row in NumPy
    rng = np.random.default_rng(0)
    params = _gaussian_head_params(rng, "prior", 5, 3)
    features = rng.normal(size=(4, 2, 5))
    (mu, sigma), _ = heads.gaussian_head_forward(params, "prior", features, 1e-3)
    a_sig = features @ params["prior.sigma.W"] + params["prior.sigma.b"]
    np.testing.assert_allclose(mu, features @ params["prior.mu.W"] + params["prior.mu.b"], rtol=1e-12)
    np.testing.assert_allclose(sigma, np.logaddexp(0, a_sig) + 1e-3, rtol=1e-12)
    assert mu.shape == sigma.shape == (4, 2, 3) and mu.flags.c_contiguous and sigma.flags.c_contiguous


@pytest.mark.parametrize("shape", [(7,), (3, 4)])
def test_gaussian_head_gradients(heads, shape):
    rng = np.random.default_rng(1)
    F, Z = 4, 3
    params = _gaussian_head_params(rng, "enc", F, Z)

    def forward(features, **p):
        return heads.gaussian_head_forward(p, "enc", features, 1e-3)[0]

    def backward(dy, features, **p):
        dfeatures, grads = heads.gaussian_head_backward(*dy, heads.gaussian_head_forward(p, "enc", features, 1e-3)[1])
        return {"features": dfeatures, **grads}

    errors = gradcheck(forward, backward, {"features": rng.normal(size=shape + (F,)), **params})
    assert max(errors.values()) < 1e-6, errors


def test_gaussian_head_backward_names_a_gradient_of_the_wrong_shape(heads):
    rng = np.random.default_rng(2)
    params = _gaussian_head_params(rng, "prior", 4, 3)
    (mu, sigma), cache = heads.gaussian_head_forward(params, "prior", rng.normal(size=(5, 4)), 1e-3)
    with pytest.raises(ValueError, match="dsigma: expected shape"):
        heads.gaussian_head_backward(mu, sigma[:, :2], cache)


@pytest.mark.parametrize("kind", ["gauss", "gmm", "pen"])
def test_output_heads_gradients(heads, kind):
    rng = np.random.default_rng(3)
    F, D, K = 4, (3 if kind == "pen" else 2), 3
    widths = {head: width(D, K) for head, width in heads.OUTPUT_HEADS[kind].items()}
    params = heads.init_heads(rng, "dec", F, widths, np.float64)
    names = sorted(widths)

    def forward(features, **p):
        out, _ = heads.output_params_forward(p, kind, features, D, K, 1e-3)
        return tuple(out[n] for n in names)

    def backward(dy, features, **p):
        _, cache = heads.output_params_forward(p, kind, features, D, K, 1e-3)
        dfeatures, grads = heads.output_params_backward(dict(zip(names, dy)), cache)
        return {"features": dfeatures, **grads}

    errors = gradcheck(forward, backward, {"features": rng.normal(size=(6, F)), **params})
    assert max(errors.values()) < 1e-6, errors


def test_rho_is_a_clipped_tanh_and_gets_no_gradient_where_clipped(heads):
    rng = np.random.default_rng(4)
    widths = {head: width(3, 2) for head, width in heads.OUTPUT_HEADS["pen"].items()}
    params = heads.init_heads(rng, "dec", 4, widths, np.float64)
    params["dec.rho.W"] = np.zeros((4, 2))
    params["dec.rho.b"] = np.array([0.5, 20.0])  # the second beyond RHO_CLIP
    out, cache = heads.output_params_forward(params, "pen", rng.normal(size=(5, 4)), 3, 2, 1e-3)
    np.testing.assert_allclose(out["rho"], np.tile([np.tanh(0.5), np.tanh(heads.RHO_CLIP)], (5, 1)), rtol=1e-14)
    assert np.all(np.abs(out["rho"]) < 1)
    dout = {k: np.zeros_like(v) for k, v in out.items()}
    dout["rho"] = np.ones_like(out["rho"])
    _, grads = heads.output_params_backward(dout, cache)
    assert grads["dec.rho.b"][0] != 0 and grads["dec.rho.b"][1] == 0


@pytest.mark.parametrize("kind", ["gauss", "gmm", "pen"])
def test_samples_follow_the_distribution(heads, kind):
    # many rows of one fixed distribution: sample means and standard deviations within 5 standard errors
    rng = np.random.default_rng(5)
    N, D = 20_000, (3 if kind == "pen" else 2)
    mu = np.array([[1.0, -2.0], [3.0, 0.5]])  # (K, 2) component means
    sigma = np.array([[0.5, 2.0], [1.0, 0.3]])
    out = {"mu": np.tile(mu[0], (N, 1)), "sigma": np.tile(sigma[0], (N, 1))}
    if kind != "gauss":  # component 0 only: its weight is ~1
        out = {"logits": np.tile([30.0, 0.0], (N, 1)), "mu": np.tile(mu, (N, 1, 1)), "sigma": np.tile(sigma, (N, 1, 1))}
    if kind == "pen":
        out.update(rho=np.tile([0.6, 0.0], (N, 1)), pen=np.full(N, np.log(0.25 / 0.75)))  # P(pen up) = 0.25
    x = heads.output_sample(out, kind, heads.output_noise(kind, (N,), D, rng, np.float64))
    assert x.shape == (N, D)
    xy = x[:, :2]
    np.testing.assert_allclose(xy.mean(axis=0), mu[0], atol=5 * sigma[0].max() / np.sqrt(N))
    np.testing.assert_allclose(xy.std(axis=0), sigma[0], rtol=0.03)
    if kind == "pen":
        assert abs(np.corrcoef(xy.T)[0, 1] - 0.6) < 0.03
        assert set(np.unique(x[:, 2])) <= {0.0, 1.0} and abs(x[:, 2].mean() - 0.25) < 0.02
