"""The two engines of model.py compute the same training step: the readable one (minivrnn/readable.py, a loop
over t of the components in minivrnn/ops/) and the compiled one (minivrnn/fast/engine.py) agree to float64
rounding for every model variant, and the readable one passes the whole-model finite-difference check itself."""
import numpy as np
import pytest

from minivrnn import VRNNConfig, init_params, loss_and_grads
from minivrnn.gradcheck import gradcheck
from minivrnn.model import MODELS, forward
from minivrnn.sampling import draw_noise, sample_with_noise

# Every variant: the five models x GRU/LSTM x Gaussian/GMM/pen output x one or two hidden layers. The pen output
# replaces the output density of any model (its config is x_dim = 3, output = "pen").
VARIANTS = [(model, cell, output, n_layers) for model in MODELS for cell in ("gru", "lstm")
            for output in ("auto", "pen") for n_layers in (1, 2)]
LENGTHS = [6, 2, 4, 1]  # ragged: padded steps at the end of three of the four sequences


def _config(model, cell, output, n_layers):
    return VRNNConfig(x_dim=3 if output == "pen" else 2, z_dim=3, h_dim=5, feat_dim=4, n_layers=n_layers,
                      model=model, n_mix=2, cell=cell, output=output)


def _batch(config, seed):
    rng = np.random.default_rng(seed)
    T, B = max(LENGTHS), len(LENGTHS)
    x = rng.normal(size=(T, B, config.x_dim))
    if config.output_kind == "pen":
        x[..., 2] = rng.random((T, B)) < 0.3
    mask = (np.arange(T)[:, None] < np.array(LENGTHS)[None, :]).astype(float)  # (T, B)
    x[mask == 0] = 5.0  # padding holds junk
    eps = rng.normal(size=(T, B, config.z_dim)) if config.latent else None
    state0 = tuple(rng.uniform(-0.8, 0.8, size=(B, config.h_dim)) for _ in range(config.n_state))
    return x, mask, eps, state0


def _assert_close(a, b, what):
    """Equal to float64 rounding: rtol 1e-12, with an absolute floor at 1e-12 of the array's scale (an entry that
    is a sum of terms which nearly cancel keeps only their rounding error, which no relative test can hold)."""
    scale = max(np.max(np.abs(b)), 1e-300) if np.size(b) else 1.0
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * scale, err_msg=what)


@pytest.mark.parametrize("model, cell, output, n_layers", VARIANTS)
def test_the_engines_agree(model, cell, output, n_layers):
    config = _config(model, cell, output, n_layers)
    params = init_params(config, seed=1)
    x, mask, eps, state0 = _batch(config, seed=2)
    kw = dict(state0=state0, kl_weight=0.6)
    results, grads = {}, {}
    for engine in ("compiled", "readable"):
        result, cache = forward(params, config, x, mask, eps, engine=engine, **kw)
        results[engine] = result
        grads[engine] = loss_and_grads(params, config, x, mask, eps, engine=engine, **kw)[1]
    fast, slow = results["compiled"], results["readable"]
    assert set(fast) == set(slow)
    for key in fast:
        if key == "final_state":
            assert len(fast[key]) == len(slow[key]) == config.n_state
            for i, (a, b) in enumerate(zip(fast[key], slow[key])):
                _assert_close(a, b, f"final_state[{i}]")
        else:
            _assert_close(fast[key], slow[key], key)
    assert set(grads["compiled"]) == set(grads["readable"]) == set(params)
    for k in params:
        _assert_close(grads["compiled"][k], grads["readable"][k], k)


def test_the_engines_agree_in_float32():
    """In float32 both engines round differently, but within float32's precision of each other."""
    config = _config("vrnn-gmm", "lstm", "auto", 2)
    params = {k: v.astype(np.float32) for k, v in init_params(config, seed=3).items()}
    x, mask, eps, state0 = (a if a is None or isinstance(a, tuple) else a.astype(np.float32)
                            for a in _batch(config, seed=4))
    state0 = tuple(s.astype(np.float32) for s in state0)
    (l1, g1), (l2, g2) = (loss_and_grads(params, config, x, mask, eps, state0=state0, engine=e)
                          for e in ("compiled", "readable"))
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for k in g1:
        assert g1[k].dtype == g2[k].dtype == np.float32
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-3, atol=1e-4 * np.max(np.abs(g2[k])), err_msg=k)


@pytest.mark.parametrize("model, cell, output", [("vrnn-gauss", "gru", "auto"), ("vrnn-gmm", "lstm", "auto"),
                                                 ("vrnn-i-gauss", "gru", "pen"), ("rnn-gmm", "lstm", "auto"),
                                                 ("rnn-gauss", "gru", "pen")])
def test_the_readable_engine_passes_the_finite_difference_check(model, cell, output):
    """Its gradients against float64 central differences of its own loss, with a ragged mask, an initial state
    and a KL weight: the readable engine is right on its own, not only equal to the compiled one."""
    config = _config(model, cell, output, 2)
    params = init_params(config, seed=5)
    x, mask, eps, state0 = _batch(config, seed=6)
    kw = dict(state0=state0, kl_weight=0.4, engine="readable")
    errors = gradcheck(lambda **p: np.array(loss_and_grads(p, config, x, mask, eps, **kw)[0]),
                       lambda d, **p: {k: d * g for k, g in loss_and_grads(p, config, x, mask, eps, **kw)[1].items()},
                       params)
    assert set(errors) == set(params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, (worst, errors[worst])


def test_a_readable_step_is_a_whole_sequence_of_one_step():
    """Truncated BPTT with the readable engine: two chunks, the state carried, add up to the whole sequence."""
    config = _config("vrnn-gauss", "lstm", "auto", 1)
    params = init_params(config, seed=7)
    x, mask, eps, _ = _batch(config, seed=8)
    whole = forward(params, config, x, mask, eps, engine="readable")[0]
    first = forward(params, config, x[:3], mask[:3], eps[:3], engine="readable")[0]
    second = forward(params, config, x[3:], mask[3:], eps[3:], state0=first["final_state"], engine="readable")[0]
    np.testing.assert_allclose(first["loss"] + second["loss"], whole["loss"], rtol=1e-12)
    for a, b in zip(second["final_state"], whole["final_state"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model, cell, output", [("vrnn-gmm", "gru", "auto"), ("vrnn-gauss", "lstm", "pen"),
                                                 ("rnn-gauss", "gru", "auto")])
def test_generation_is_the_same_with_either_engine(model, cell, output):
    config = _config(model, cell, output, 2)
    params = init_params(config, seed=9)
    noise = draw_noise(config, 7, 3, np.random.default_rng(10))
    a = sample_with_noise(params, config, noise, engine="compiled")
    b = sample_with_noise(params, config, noise, engine="readable")
    _assert_close(a, b, "samples")


def test_both_engines_raise_the_same_error_for_the_same_bad_input():
    config = _config("vrnn-gauss", "gru", "auto", 1)
    params = init_params(config)
    x, mask, eps, _ = _batch(config, seed=11)
    bad = {"x": (x[..., :1], mask, eps), "mask": (x, mask[:3], eps), "eps": (x, mask, None),
           "dtype": (x.astype(np.float32), mask, eps)}
    for what, args in bad.items():
        messages = []
        for engine in ("compiled", "readable"):
            with pytest.raises(ValueError) as error:
                loss_and_grads(params, config, *args, engine=engine)
            messages.append(str(error.value))
        assert messages[0] == messages[1] and "\n" not in messages[0], what
    with pytest.raises(ValueError, match="engine: expected one of compiled, readable, got 'fast'"):
        loss_and_grads(params, config, x, mask, eps, engine="fast")
