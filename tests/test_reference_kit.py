"""The reference kit (minivrnn/reference_kit): its checks pass for minivrnn and for the PyTorch twin, fail for
wrong implementations, and the golden vectors are reproduced by both minivrnn and the twin (the twin shares
no code with minivrnn, so it is the independent reason to trust the golden values). The planted bugs and their
diagnoses: tests/test_reference_kit_bugs.py; the command: test_reference_kit_command.py; the README's examples:
test_reference_kit_readme.py."""
import dataclasses
import re

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
from minivrnn.reference_kit import generate
from minivrnn.sampling import sample_with_noise

GOLDEN = kit.golden_paths()
KIT = kit.GOLDEN_DIR.parent
NAMES = [p.stem for p in GOLDEN]


# --- adapters: minivrnn -----------------------------------------------------------------------------------

def ours_pen(x, logits, mu, sigma, rho, pen_logit):
    xy, e = np.ascontiguousarray(x[..., :2]), np.ascontiguousarray(x[..., 2])
    return bivariate_gmm_logpdf_forward(xy, logits, mu, sigma, rho)[0] + bernoulli_logpmf_forward(e, pen_logit)[0]


def ours_loss(params, config, x, mask, eps, state0=None):
    result, cache = forward(params, VRNNConfig(**config), x, mask, eps, state0=state0)
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
    pytest.importorskip("torch")
    from tests.reference_kit import twins

    yield from twins.one_thread()


def twin_densities():
    from tests.reference_kit import twins

    return {"gaussian": twins.gaussian_logpdf, "kl": twins.kl_gaussian, "gmm": twins.gmm_logpdf, "pen": twins.pen_logpdf}


def twin_loss():
    from minivrnn import torch_twin

    return lambda params, config, x, mask, eps, state0=None: torch_twin.run(params, VRNNConfig(**config), x, mask, eps,
                                                                            state0=state0)


# --- wrong implementations the checks must catch -----------------------------------------------------------

def log_n(x, mu, sigma):  # log N per component, summed over D, with scipy
    return stats.norm.logpdf(x[..., None, :], mu, sigma).sum(-1)


WRONG = {  # each with the slip the check's diagnosis must name
    "gaussian": [  # log sigma instead of 2 log sigma; sigma used as a variance
        (lambda x, mu, s: -0.5 * (np.log(2 * np.pi) + np.log(s) + ((x - mu) / s) ** 2).sum(-1),
         "the log of the variance is 2 log sigma"),
        (lambda x, mu, s: stats.norm.logpdf(x, mu, np.sqrt(s)).sum(-1), "sigma taken as the variance")],
    "kl": [  # KL(p || q) instead of KL(q || p); the 1/2 forgotten
        (lambda mq, sq, mp, sp: (np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5).sum(-1),
         "KL(p || q): the arguments are the other way round"),
        (lambda mq, sq, mp, sp: (np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2)).sum(-1),
         "without its - 1/2")],
    "gmm": [  # unnormalised weights; the naive log of a sum, which underflows far from the components
        (lambda x, l, mu, s: logsumexp(l + log_n(x, mu, s), axis=-1), "unnormalised weights"),
        (lambda x, l, mu, s: np.log((np.exp(log_softmax(l, axis=-1)) * np.exp(log_n(x, mu, s))).sum(-1)),
         "must subtract the largest term first")],
    "pen": [  # the correlation's sign flipped; the Bernoulli's sign flipped
        (lambda x, l, mu, s, r, p: ours_pen(x, l, mu, s, -r, p), "the correlation's sign flipped"),
        (lambda x, l, mu, s, r, p: ours_pen(x, l, mu, s, r, -p), "Bernoulli with its sign flipped")],
}


# --- the property checks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", OURS)
def test_checks_pass_for_minivrnn(name):
    check, fn = OURS[name]
    assert check(fn) < 1e-9


@pytest.mark.parametrize("name", OURS)
def test_checks_pass_for_the_twin(name, twin):
    check = OURS[name][0]
    assert check(twin_densities()[name]) < 1e-9


@pytest.mark.parametrize("name, i", [(n, i) for n in WRONG for i in range(len(WRONG[n]))])
def test_checks_catch_wrong_implementations_and_name_the_slip(name, i):
    check = OURS[name][0]
    fn, slip = WRONG[name][i]
    with np.errstate(all="ignore"), pytest.raises(kit.CheckFailed, match=r"expected|NaN or infinite") as failed:
        check(fn)
    assert isinstance(failed.value, AssertionError)  # pytest shows it as a failed assertion
    assert any(slip in line for line in failed.value.diagnosis), failed.value


def test_checks_report_a_wrong_shape():
    with pytest.raises(AssertionError, match=r"expected shape \(\)"):
        kit.check_gaussian_logpdf(lambda x, mu, sigma: stats.norm.logpdf(x, mu, sigma))  # not summed over D


# --- the golden vectors --------------------------------------------------------------------------------------

def test_golden_files_are_small_and_follow_the_documented_format():
    assert {"vrnn-gauss", "vrnn-gmm", "vrnn-i-gauss", "rnn-gauss", "rnn-gmm", "vrnn-gauss-lstm", "vrnn-gmm-pen",
            "vrnn-gmm-edges", "vrnn-gmm-pen-edges"} == set(NAMES)
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
        assert (g["eps"] is not None) == config.latent and len(g["final_state"]) == config.n_state
        assert g["sample"].shape[2] == D and set(g["noise"]) == {"z", "normal", "u_component", "u_pen"}
        assert all(np.any(v != 0) for v in g["grads"].values())  # every gradient is really checked
        assert np.all(g["nll"][g["mask"] == 0] == 0) and np.all(g["kl"][g["mask"] == 0] == 0)


def test_golden_masks_pad_inside_sequences_and_at_their_ends():
    """A state that moves on a padded step shows in the loss only through real steps after that step."""
    for path in GOLDEN:
        mask = kit.load_golden(path)["mask"]
        inside = [b for b in range(mask.shape[1]) if np.any(np.diff(mask[:, b]) > 0)]  # a 0 then a 1
        at_end = [b for b in range(mask.shape[1]) if mask[-1, b] == 0]
        assert inside and at_end and set(np.unique(mask)) == {0.0, 1.0}, path.stem
        assert np.all(kit.load_golden(path)["x"][mask == 0] == generate.JUNK)


@pytest.mark.parametrize("name", NAMES)
def test_the_generator_reproduces_the_golden_files_from_both_engines(name):
    """generate.py's readable and compiled engines agree on every array, and the committed file is what they
    make (to rounding: they sum in different orders, and BLAS may differ between machines)."""
    readable, compiled = generate.make_case(name, "readable"), generate.make_case(name, "compiled")
    assert generate.engines_disagree(readable, compiled) == []
    with np.load(kit.GOLDEN_DIR / f"{name}.npz") as f:
        stored = {k: f[k] for k in f.files}
    assert set(stored) == set(readable)
    assert generate.engines_disagree(readable, stored) == []


def test_the_generator_refuses_an_output_folder_that_is_not_there(tmp_path, capsys):
    assert generate.main(["--out", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out") and "not a folder" in err[0]


def test_the_edge_cases_reach_the_clip_and_softplus_beyond_20(twin):
    """Seen through the twin's own layers (forward hooks on its heads): in the *-edges cases some real steps'
    standard-deviation pre-activations are beyond +20 (where PyTorch's F.softplus becomes the identity) and
    below -20, and the pen case's correlation pre-activations are beyond +8 and below -8 (clipped)."""
    import torch

    from tests.reference_kit import twins

    seen = {}
    for name in ("vrnn-gmm-edges", "vrnn-gmm-pen-edges"):
        g = kit.load_golden(kit.GOLDEN_DIR / f"{name}.npz")
        model = twins.build(g["params"], g["config"])
        for part, heads in model.heads.items():
            for head, layer in heads.items():
                layer.register_forward_hook(lambda m, i, out, key=(name, part, head): seen.setdefault(key, []).append(
                    out.detach().numpy()))
        model.loss(*(torch.as_tensor(a) for a in (g["x"], g["mask"], g["eps"])))
    real = {name: kit.load_golden(kit.GOLDEN_DIR / f"{name}.npz")["mask"] > 0 for name in ("vrnn-gmm-edges",
                                                                                           "vrnn-gmm-pen-edges")}

    def values(name, part, head):
        # (T, B, width) for the decoder (one call over all steps), a (B, width) per step for the others
        out = np.stack(seen[(name, part, head)]) if len(seen[(name, part, head)]) > 1 else seen[(name, part, head)][0]
        return out[real[name]]

    for name in real:
        sigmas = np.concatenate([values(name, part, "sigma").ravel() for part in ("enc", "dec")])
        assert sigmas.max() > 20 and sigmas.min() < -20, name
    rho = values("vrnn-gmm-pen-edges", "dec", "rho")
    assert rho.max() > 8 and rho.min() < -8 and np.any(np.abs(rho) < 8)


@pytest.mark.parametrize("path", GOLDEN, ids=NAMES)
def test_minivrnn_reproduces_the_golden_vectors(path):
    assert kit.check_loss_against_golden(ours_loss, path) < 1e-9
    assert kit.check_sample_against_golden(ours_sample, path) < 1e-9
    assert kit.check_padding(ours_loss, path) < 1e-9
    assert kit.check_chunks(ours_loss, path) < 1e-9


@pytest.mark.parametrize("path", GOLDEN, ids=NAMES)
def test_the_twin_reproduces_the_golden_vectors(path, twin):
    from minivrnn import torch_twin

    assert kit.check_loss_against_golden(twin_loss(), path) < 1e-9
    assert kit.check_sample_against_golden(lambda p, c, n: torch_twin.sample_with_noise(p, VRNNConfig(**c), n),
                                           path) < 1e-9
    assert kit.check_padding(twin_loss(), path) < 1e-9
    assert kit.check_chunks(twin_loss(), path) < 1e-9


def test_one_float32_tolerance_passes_a_float32_implementation_on_every_float32_case(twin):
    """The twin in float32 passes every case but FLOAT64_ONLY at FLOAT32_RTOL, and fails that one: float32
    cannot resolve 1 - tanh(8)^2 (which is why the case is left out, not the tolerance raised)."""
    from tests.reference_kit import twins

    float32 = twins.adapter(dtype=__import__("torch").float32)
    cases = kit.golden_paths(float32=True)
    assert {p.stem for p in GOLDEN} - {p.stem for p in cases} == set(kit.FLOAT64_ONLY)
    for path in cases:
        assert kit.check_loss_against_golden(float32, path, rtol=kit.FLOAT32_RTOL) < kit.FLOAT32_RTOL
        with pytest.raises(kit.CheckFailed, match="rtol 1e-09") as failed:
            kit.check_loss_against_golden(float32, path)
        assert failed.value.diagnosis[0].startswith("your gradients are float32 arrays: check them with rtol")
    for name in kit.FLOAT64_ONLY:
        with pytest.raises(kit.CheckFailed, match="float64 only"):
            kit.check_loss_against_golden(float32, kit.GOLDEN_DIR / f"{name}.npz", rtol=kit.FLOAT32_RTOL)


def test_the_float32_tolerance_is_stated_once():
    """The README and every docstring give the float32 tolerance as FLOAT32_RTOL's value, and nothing else."""
    from minivrnn.reference_kit import command, properties

    texts = [(KIT / "README.md").read_text(), properties.__doc__, command.build_parser().format_help(),
             kit.__doc__]
    stated = {float(m) for text in texts for sentence in re.split(r"(?<=[.;:])\s", text) if "float32" in sentence
              for m in re.findall(r"(?<![\d.])\d?e-\d+\b", sentence)}
    assert stated == {kit.FLOAT32_RTOL}


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

    def ignores_state0(params, config, x, mask, eps, state0=None):
        return ours_loss(params, config, x, mask, eps)

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
    with pytest.raises(kit.CheckFailed, match="state0 is not where the second chunk starts"):
        kit.check_chunks(ignores_state0, path)


def test_answers_in_the_wrong_form_are_named():
    """A None gradient (PyTorch's .grad of a parameter the loss never reached), a loss that cannot be read as a
    number, and a wrong shape each fail with a message that says what to return."""
    path = kit.GOLDEN_DIR / "vrnn-gauss.npz"

    def none_for_the_cell(*args):
        out = ours_loss(*args)
        if args[2].shape[0] == 1:  # a one-step sequence alone: the cell never reaches the loss
            out["grads"] = {k: None if k.startswith("gru.") else v for k, v in out["grads"].items()}
        return out

    class Unreadable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("Can't call numpy() on Tensor that requires grad")

    with pytest.raises(kit.CheckFailed, match=r"sequence 2 alone \(1 steps\): the gradient of gru.W_ir.* is None.*"
                                              r"return zeros"):
        kit.check_padding(none_for_the_cell, path)
    with pytest.raises(kit.CheckFailed, match=r"loss: cannot be read as a float64 array .*\.item\(\)"):
        kit.check_loss_against_golden(lambda *a: {**ours_loss(*a), "loss": Unreadable()}, path)
    with pytest.raises(kit.CheckFailed, match=r"per-step kl: expected shape \(6, 3\), got \(3, 6\)"):
        kit.check_loss_against_golden(lambda *a: {**ours_loss(*a), "kl": ours_loss(*a)["kl"].T}, path)
