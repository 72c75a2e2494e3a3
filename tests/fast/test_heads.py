import numpy as np
import pytest

from minivrnn.fast import heads
from minivrnn.gradcheck import gradcheck


def _gaussian_head_params(rng, name, F, Z):
    return heads.init_heads(rng, name, F, {"mu": Z, "sigma": Z}, np.float64)


def test_gaussian_head_is_the_two_linear_heads_with_a_softplus_floor():
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
def test_gaussian_head_gradients(shape):
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


def test_gaussian_head_backward_names_a_gradient_of_the_wrong_shape():
    rng = np.random.default_rng(2)
    params = _gaussian_head_params(rng, "prior", 4, 3)
    (mu, sigma), cache = heads.gaussian_head_forward(params, "prior", rng.normal(size=(5, 4)), 1e-3)
    with pytest.raises(ValueError, match="dsigma: expected shape"):
        heads.gaussian_head_backward(mu, sigma[:, :2], cache)


@pytest.mark.parametrize("kind", ["gauss", "gmm"])
def test_output_heads_gradients(kind):
    # the Gaussian output runs through the joined pass, the mixture through the generic cut: both must agree
    # with finite differences
    rng = np.random.default_rng(3)
    F, D, K = 4, 2, 3
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
