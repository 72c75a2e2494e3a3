"""The reference kit (minivrnn/reference_kit): its checks pass for minivrnn and for the PyTorch twin, fail for
wrong implementations, and the golden vectors are reproduced by both minivrnn and the twin (the twin shares
no code with minivrnn, so it is the independent reason to trust the golden values)."""
import dataclasses

import numpy as np
import pytest
from scipy import stats
from scipy.special import log_softmax, logsumexp

from minivrnn import VRNNConfig, init_params
from minivrnn import reference_kit as kit
from minivrnn.model import backward, forward
from minivrnn.fast.gaussian import gaussian_logpdf_forward
from minivrnn.fast.gmm import gmm_logpdf_forward
from minivrnn.fast.kl import kl_gaussian_forward
from minivrnn.fast.pen import bernoulli_logpmf_forward, bivariate_gmm_logpdf_forward
from minivrnn.sampling import sample_with_noise

GOLDEN = kit.golden_paths()
NAMES = [p.stem for p in GOLDEN]


# --- adapters: minivrnn -----------------------------------------------------------------------------------

def ours_pen(x, logits, mu, sigma, rho, pen_logit):
    xy, e = np.ascontiguousarray(x[..., :2]), np.ascontiguousarray(x[..., 2])
    return bivariate_gmm_logpdf_forward(xy, logits, mu, sigma, rho)[0] + bernoulli_logpmf_forward(e, pen_logit)[0]


def ours_loss(params, config, x, mask, eps):
    result, cache = forward(params, VRNNConfig(**config), x, mask, eps)
    return {"loss": result["loss"], "nll": result["nll"], "kl": result["kl"], "final_state": result["final_state"],
            "grads": backward(cache)}


def ours_sample(params, config, noise):
    return sample_with_noise(params, VRNNConfig(**config), noise)


OURS = {
    "gaussian": (kit.check_gaussian_logpdf, lambda x, mu, sigma: gaussian_logpdf_forward(x, mu, sigma)[0]),
    "kl": (kit.check_kl, lambda *a: kl_gaussian_forward(*a)[0]),
    "gmm": (kit.check_gmm_logpdf, lambda *a: gmm_logpdf_forward(*a)[0]),
    "pen": (kit.check_pen_logpdf, ours_pen),
}


# --- adapters: the PyTorch twin (torch.distributions) -------------------------------------------------------

@pytest.fixture(scope="module")
def twin():
    return pytest.importorskip("minivrnn.torch_twin")


def twin_densities(twin):
    import torch
    from torch.distributions import Normal, kl_divergence

    t = torch.from_numpy
    return {
        "gaussian": lambda x, mu, s: twin.diagonal_gaussian(t(mu), t(s)).log_prob(t(x)).numpy(),
        "kl": lambda mq, sq, mp, sp: kl_divergence(Normal(t(mq), t(sq)), Normal(t(mp), t(sp))).sum(-1).numpy(),
        "gmm": lambda x, l, mu, s: twin.gaussian_mixture(t(l), t(mu), t(s)).log_prob(t(x)).numpy(),
        "pen": lambda x, l, mu, s, r, p: twin.Pen(t(l), t(mu), t(s), t(r), t(p)).log_prob(t(x)).numpy(),
    }


def twin_loss(twin):
    return lambda params, config, x, mask, eps: twin.run(params, VRNNConfig(**config), x, mask, eps)


# --- wrong implementations the checks must catch -----------------------------------------------------------

def log_n(x, mu, sigma):  # log N per component, summed over D, with scipy
    return stats.norm.logpdf(x[..., None, :], mu, sigma).sum(-1)


WRONG = {
    "gaussian": [  # log sigma instead of 2 log sigma; sigma used as a variance
        lambda x, mu, s: -0.5 * (np.log(2 * np.pi) + np.log(s) + ((x - mu) / s) ** 2).sum(-1),
        lambda x, mu, s: stats.norm.logpdf(x, mu, np.sqrt(s)).sum(-1)],
    "kl": [  # KL(p || q) instead of KL(q || p); the 1/2 forgotten
        lambda mq, sq, mp, sp: (np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5).sum(-1),
        lambda mq, sq, mp, sp: (np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2)).sum(-1)],
    "gmm": [  # unnormalised weights; the naive log of a sum, which underflows far from the components
        lambda x, l, mu, s: logsumexp(l + log_n(x, mu, s), axis=-1),
        lambda x, l, mu, s: np.log((np.exp(log_softmax(l, axis=-1)) * np.exp(log_n(x, mu, s))).sum(-1))],
    "pen": [  # the correlation's sign flipped; the Bernoulli's sign flipped
        lambda x, l, mu, s, r, p: ours_pen(x, l, mu, s, -r, p),
        lambda x, l, mu, s, r, p: ours_pen(x, l, mu, s, r, -p)],
}


# --- the property checks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", OURS)
def test_checks_pass_for_minivrnn(name):
    check, fn = OURS[name]
    assert check(fn) < 1e-9


@pytest.mark.parametrize("name", OURS)
def test_checks_pass_for_the_twin(name, twin):
    check = OURS[name][0]
    assert check(twin_densities(twin)[name]) < 1e-9


@pytest.mark.parametrize("name, i", [(n, i) for n in WRONG for i in range(len(WRONG[n]))])
def test_checks_catch_wrong_implementations(name, i):
    check = OURS[name][0]
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match=r"expected|NaN or infinite"):
        check(WRONG[name][i])


def test_checks_report_a_wrong_shape():
    with pytest.raises(AssertionError, match=r"expected shape \(\)"):
        kit.check_gaussian_logpdf(lambda x, mu, sigma: stats.norm.logpdf(x, mu, sigma))  # not summed over D


# --- the golden vectors --------------------------------------------------------------------------------------

def test_golden_files_are_small_and_follow_the_documented_format():
    assert {"vrnn-gauss", "vrnn-gmm", "vrnn-i-gauss", "rnn-gauss", "rnn-gmm"} <= set(NAMES)
    assert sum(p.stat().st_size for p in GOLDEN) < 1_000_000
    for path in GOLDEN:
        g = kit.load_golden(path)  # np.load without pickles
        config = VRNNConfig(**g["config"])
        assert dataclasses.asdict(config) == g["config"]
        params = init_params(config)
        assert set(g["params"]) == set(g["grads"]) == set(params)
        assert all(g["params"][k].shape == g["grads"][k].shape == v.shape for k, v in params.items())
        T, B, D = g["x"].shape
        assert D == config.x_dim and g["mask"].shape == g["nll"].shape == g["kl"].shape == (T, B)
        assert 0 < g["mask"].sum() < T * B  # ragged: some steps are padding
        assert (g["eps"] is not None) == config.latent and len(g["final_state"]) == config.n_state
        assert g["sample"].shape[2] == D and set(g["noise"]) == {"z", "normal", "u_component", "u_pen"}
        assert all(np.any(v != 0) for v in g["grads"].values())  # every gradient is really checked


@pytest.mark.parametrize("path", GOLDEN, ids=NAMES)
def test_minivrnn_reproduces_the_golden_vectors(path):
    assert kit.check_loss_against_golden(ours_loss, path) < 1e-9
    assert kit.check_sample_against_golden(ours_sample, path) < 1e-9
    assert kit.check_padding(ours_loss, path) < 1e-9


@pytest.mark.parametrize("path", GOLDEN, ids=NAMES)
def test_the_twin_reproduces_the_golden_vectors(path, twin):
    assert kit.check_loss_against_golden(twin_loss(twin), path) < 1e-9
    assert kit.check_sample_against_golden(lambda p, c, n: twin.sample_with_noise(p, VRNNConfig(**c), n), path) < 1e-9
    assert kit.check_padding(twin_loss(twin), path) < 1e-9


def test_golden_checks_take_an_rtol_for_float32_implementations():
    def float32_loss(params, config, x, mask, eps):
        cast = lambda a: None if a is None else a.astype(np.float32)
        return ours_loss({k: cast(v) for k, v in params.items()}, config, cast(x), cast(mask), cast(eps))

    path = kit.GOLDEN_DIR / "vrnn-gmm.npz"
    with pytest.raises(AssertionError, match="rtol 1e-09"):
        kit.check_loss_against_golden(float32_loss, path)
    assert kit.check_loss_against_golden(float32_loss, path, rtol=1e-4) < 1e-4


def test_golden_checks_catch_wrong_losses():
    path = kit.GOLDEN_DIR / "vrnn-gauss.npz"

    def one_gradient_off(*args):
        out = ours_loss(*args)
        out["grads"]["gru.b_hn"] = out["grads"]["gru.b_hn"] * (1 + 1e-6)
        return out

    def ignores_the_mask(params, config, x, mask, eps):
        return ours_loss(params, config, x, np.ones_like(mask), eps)

    def drops_a_gradient(*args):
        out = ours_loss(*args)
        del out["grads"]["enc.mu.W"]
        return out

    with pytest.raises(AssertionError, match="gradient of gru.b_hn"):
        kit.check_loss_against_golden(one_gradient_off, path)
    with pytest.raises(AssertionError, match="loss"):
        kit.check_loss_against_golden(ignores_the_mask, path)
    with pytest.raises(AssertionError, match="padded steps"):
        kit.check_padding(ignores_the_mask, path)
    with pytest.raises(AssertionError, match=r"missing \['enc.mu.W'\]"):
        kit.check_loss_against_golden(drops_a_gradient, path)
    with pytest.raises(AssertionError, match="sample"):
        kit.check_sample_against_golden(lambda p, c, n: ours_sample(p, c, {**n, "normal": -n["normal"]}), path)
