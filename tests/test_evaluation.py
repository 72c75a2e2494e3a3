"""The ELBO and the importance-sampled estimate against a log-likelihood computed by quadrature."""
import numpy as np
import pytest

from minivrnn import VRNNConfig, init_params
from minivrnn.evaluation import elbo_and_importance, log_weight
from minivrnn.model import forward
from minivrnn.fast.gaussian import gaussian_logpdf_forward


def _exact_log_likelihood(params, config, x1):
    """For T = 1 and Z = 1, log p(x) = log of the integral of p(x | z) p(z) dz, by the trapezoid rule on a grid.

    Each grid point z_g becomes one sequence of the batch, reached through eps = (z_g - mu_q) / sigma_q, so
    log p(x, z_g) = log_weight + log q(z_g).
    """
    grid = np.linspace(-12, 12, 24001)
    G = grid.size
    x = np.repeat(x1[None, None, :], G, axis=1)  # (1, G, D)
    mask = np.ones((1, G))
    probe, _ = forward(params, config, x, mask, np.zeros((1, G, 1)))
    eps = ((grid - probe["q_mu"][0, :, 0]) / probe["q_sigma"][0, :, 0])[None, :, None]
    result, _ = forward(params, config, x, mask, eps)
    z = grid[None, :, None]
    log_q = gaussian_logpdf_forward(z, result["q_mu"], result["q_sigma"])[0][0]
    log_joint = log_weight(result, eps, mask) + log_q  # (G,)
    m = log_joint.max()
    return m + np.log(np.trapezoid(np.exp(log_joint - m), grid))


@pytest.mark.parametrize("model", ["vrnn-gauss", "vrnn-gmm"])
def test_importance_estimate_climbs_to_the_exact_log_likelihood(model):
    config = VRNNConfig(x_dim=2, z_dim=1, h_dim=3, feat_dim=8, model=model, n_mix=2)
    params = init_params(config, seed=0)
    # Sharpen the decoder (sigma near its floor scale) so the posterior differs from the prior.
    params["dec.sigma.b"] = params["dec.sigma.b"] - 2.0
    x1 = np.array([0.7, -0.4])
    exact = _exact_log_likelihood(params, config, x1)
    reps = 400  # independent repetitions of each estimator, as the batch
    x, mask = np.repeat(x1[None, None], reps, axis=1), np.ones((1, reps))
    rng = np.random.default_rng(1)
    means = {}
    for S in (1, 10, 200):
        elbo, estimate = elbo_and_importance(params, config, x, mask, S, rng)
        means[S] = (elbo.mean(), estimate.mean(), estimate.std() / np.sqrt(reps))
    # The ELBO is a lower bound; the estimate rises with S and approaches the exact value from below.
    assert means[200][0] < exact
    for S in (10, 200):  # the estimate is >= the ELBO on average (Jensen), by more than its noise
        assert means[S][1] - means[S][0] > 3 * means[S][2], (S, means[S])
    assert means[1][1] < means[10][1] < means[200][1] + 3 * means[200][2]
    assert abs(means[200][1] - exact) < max(0.02, 4 * means[200][2])
    assert exact - means[1][1] > 5 * (exact - means[200][1])


def test_rnn_baseline_columns_are_equal_and_exact():
    config = VRNNConfig(x_dim=2, h_dim=3, feat_dim=4, model="rnn-gauss")
    params = init_params(config, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 2, 2))
    mask = np.ones((4, 2))
    elbo, estimate = elbo_and_importance(params, config, x, mask, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(elbo, estimate)
    np.testing.assert_allclose(-elbo.mean(), forward(params, config, x, mask, None)[0]["loss"], rtol=1e-12)


@pytest.mark.parametrize("model", ["vrnn-gauss", "vrnn-i-gauss"])
def test_log_weights_average_to_the_elbo_over_a_ragged_batch(model):
    """E_q[log p(x, z) - log q(z | x)] = ELBO (eq. 10 with the closed-form KL): over T = 6 steps with a
    ragged mask, the mean of n independent log-weights matches the ELBO within 5 standard errors. This
    checks the time alignment and masking of log_weight, which a T = 1 quadrature cannot see."""
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=4, feat_dim=6, model=model)
    params = init_params(config, seed=3)
    rng = np.random.default_rng(4)
    lengths = np.array([6, 4, 1])
    x = rng.normal(size=(6, 3, 2))
    mask = (np.arange(6)[:, None] < lengths[None, :]).astype(float)
    n = 4000
    xs, masks = np.tile(x, (1, n, 1)), np.tile(mask, (1, n))  # (T, 3n, D): n copies of the batch
    eps = rng.standard_normal((6, 3 * n, 2))
    result, _ = forward(params, config, xs, masks, eps)
    w = log_weight(result, eps, masks).reshape(n, 3)  # (n, B)
    elbo_samples = -(result["nll"] + result["kl"]).sum(axis=0).reshape(n, 3)  # same z, closed-form KL
    d = w - elbo_samples  # log p(z) - log q(z) + KL per sample: mean zero if both are right
    se = d.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(se > 0) and np.all(np.abs(d.mean(axis=0)) < 5 * se), (d.mean(axis=0), se)
    # Padding contributes nothing: the length-1 sequence's weight is that of the sequence alone.
    alone, _ = forward(params, config, x[:1, 2:3], mask[:1, 2:3], eps[:1, 2:3])
    np.testing.assert_allclose(log_weight(alone, eps[:1, 2:3], mask[:1, 2:3]), w[0, 2], rtol=1e-12)
