"""minivrnn against its PyTorch twin (minivrnn/torch_twin.py), which shares no code with it: nn.Linear,
nn.GRUCell / nn.LSTMCell, torch.distributions and autograd. In float64 the loss (eq. 10; eq. 2 for the
baselines), its per-step terms, the final state and every gradient agree to relative 1e-9, and generation
(eqs. 4-6) from the same noise gives the same sequences."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minivrnn import VRNNConfig, init_params  # noqa: E402
from minivrnn import torch_twin  # noqa: E402
from minivrnn.model import MODELS, backward, forward  # noqa: E402
from minivrnn.sampling import draw_noise, sample_with_noise  # noqa: E402

RTOL = 1e-9
VARIANTS = [(m, c, o) for m in MODELS for c in ("gru", "lstm") for o in ("auto", "pen")]


def rel_err(got, want):
    """Largest difference relative to the largest magnitude of ``want`` (0 when both are all zero)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.abs(got - want).max(initial=0) / max(np.abs(want).max(initial=0), 1e-300))


def make_config(model, cell, output, rng):
    """A random small configuration: every size from ``rng``, mixtures with K >= 2, 1 or 2 hidden layers."""
    x_dim = 3 if output == "pen" else int(rng.integers(1, 5))
    return VRNNConfig(x_dim=x_dim, z_dim=int(rng.integers(1, 4)), h_dim=int(rng.integers(2, 6)),
                      feat_dim=int(rng.integers(3, 7)), n_layers=int(rng.integers(1, 3)), model=model,
                      n_mix=int(rng.integers(2, 4)), sigma_min=float(10 ** rng.uniform(-3, -1)), cell=cell,
                      output=output)


def make_batch(config, lengths, rng):
    """x (T, B, D) with junk on the padded steps, a ragged mask (T, B), eps (T, B, Z) or None."""
    T, B = max(lengths), len(lengths)
    x = rng.normal(size=(T, B, config.x_dim)) * 1.5
    if config.output_kind == "pen":
        x[..., 2] = rng.random((T, B)) < 0.3
    mask = (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.float64)
    x[mask == 0] = 7.0  # padded steps hold junk: it must not matter to either side
    eps = rng.normal(size=(T, B, config.z_dim)) if config.latent else None
    return x, mask, eps


def assert_twin_agrees(params, config, x, mask, eps, state0=None, kl_weight=1.0):
    """Ours (forward + backward) against the twin (autograd); returns the worst relative error seen."""
    ours, cache = forward(params, config, x, mask, eps, state0=state0, kl_weight=kl_weight)
    grads = backward(cache)
    twin = torch_twin.run(params, config, x, mask, eps, state0=state0, kl_weight=kl_weight)
    errors = {"loss": rel_err(twin["loss"], ours["loss"]), "nll": rel_err(twin["nll"], ours["nll"]),
              "kl": rel_err(twin["kl"], ours["kl"])}
    for i, (a, b) in enumerate(zip(twin["final_state"], ours["final_state"])):
        errors[f"final_state[{i}]"] = rel_err(a, b)
    assert set(twin["grads"]) == set(grads) == set(params)
    errors.update({f"d{k}": rel_err(twin["grads"][k], grads[k]) for k in grads})
    worst = max(errors, key=errors.get)
    assert errors[worst] < RTOL, f"{config}: {worst} differs by {errors[worst]:.2e} (relative)"
    return errors[worst]


def test_from_params_stores_our_weights_the_pytorch_way():
    """nn.Linear holds W.T; the cells stack the gates' W.T in PyTorch's order (GRU r, z, n; LSTM i, f, g, o)."""
    for cell, gates in (("gru", "rzn"), ("lstm", "ifgo")):
        config = VRNNConfig(x_dim=2, z_dim=3, h_dim=4, feat_dim=5, n_layers=2, model="vrnn-gmm", n_mix=2, cell=cell)
        params = init_params(config, seed=0)
        model = torch_twin.from_params(params, config)
        np.testing.assert_array_equal(model.phi_x[0].weight.detach().numpy(), params["phi_x.l0.W"].T)
        np.testing.assert_array_equal(model.dec[2].bias.detach().numpy(), params["dec.l1.b"])
        np.testing.assert_array_equal(model.heads["dec"]["logits"].weight.detach().numpy(), params["dec.logits.W"].T)
        H = config.h_dim
        for j, g in enumerate(gates):
            rows = slice(j * H, (j + 1) * H)
            np.testing.assert_array_equal(model.cell.weight_ih[rows].detach().numpy(), params[f"{cell}.W_i{g}"].T)
            np.testing.assert_array_equal(model.cell.weight_hh[rows].detach().numpy(), params[f"{cell}.W_h{g}"].T)
            np.testing.assert_array_equal(model.cell.bias_hh[rows].detach().numpy(), params[f"{cell}.b_h{g}"])


@pytest.mark.parametrize("model, cell, output", VARIANTS)
def test_every_parameter_is_loaded_once(model, cell, output):
    config = make_config(model, cell, output, np.random.default_rng(0))
    params = init_params(config, seed=1)
    twin = torch_twin.from_params(params, config)
    assert sum(p.numel() for p in twin.parameters()) == sum(p.size for p in params.values())
    for name, view in twin.named_views().items():  # no two names share a slice: each reads back its own
        np.testing.assert_array_equal(view.numpy(), params[name], err_msg=name)


def test_from_params_rejects_a_wrong_dict():
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=3, feat_dim=4)
    params = init_params(config)
    with pytest.raises(ValueError, match=r"missing \['enc.mu.W'\]"):
        torch_twin.from_params({k: v for k, v in params.items() if k != "enc.mu.W"}, config)
    with pytest.raises(ValueError, match="gru.W_hr: expected shape"):
        torch_twin.from_params({**params, "gru.W_hr": params["gru.W_hr"][:2]}, config)


@pytest.mark.parametrize("model, cell, output", VARIANTS)
def test_loss_terms_and_every_gradient_match_the_twin(model, cell, output):
    rng = np.random.default_rng(VARIANTS.index((model, cell, output)))
    config = make_config(model, cell, output, rng)
    params = init_params(config, seed=2)
    assert_twin_agrees(params, config, *make_batch(config, [5, 2, 1, 4], rng))


@st.composite
def cases(draw):
    """A random variant, configuration, ragged batch, initial state and KL weight."""
    model, cell, output = draw(st.sampled_from(VARIANTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    config = make_config(model, cell, output, rng)
    T = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(1, T), min_size=1, max_size=4))
    state0 = None
    if draw(st.booleans()):
        state0 = tuple(rng.normal(size=(len(lengths), config.h_dim)) * 0.5 for _ in range(config.n_state))
    kl_weight = draw(st.sampled_from([1.0, 0.0, 0.3]))
    return config, rng, lengths, state0, kl_weight


@given(cases())
def test_random_configurations_match_the_twin(case):
    config, rng, lengths, state0, kl_weight = case
    params = init_params(config, seed=int(rng.integers(1000)))
    assert_twin_agrees(params, config, *make_batch(config, lengths, rng), state0=state0, kl_weight=kl_weight)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_initial_state_and_kl_weight_match_the_twin(cell):
    config = VRNNConfig(x_dim=2, z_dim=3, h_dim=4, feat_dim=5, model="vrnn-gmm", n_mix=3, cell=cell)
    rng = np.random.default_rng(3)
    params = init_params(config, seed=3)
    x, mask, eps = make_batch(config, [4, 1, 3], rng)
    state0 = tuple(rng.normal(size=(3, 4)) for _ in range(config.n_state))
    assert_twin_agrees(params, config, x, mask, eps, state0=state0, kl_weight=0.25)
    # the options really change the result, so the agreement above is not the defaults' agreement
    plain = torch_twin.loss_and_grads(params, config, x, mask, eps)[0]
    for kwargs in ({"state0": state0}, {"kl_weight": 0.25}):
        assert abs(torch_twin.loss_and_grads(params, config, x, mask, eps, **kwargs)[0] - plain) > 1e-3


@pytest.mark.parametrize("model, cell, output", VARIANTS)
def test_sampling_from_the_same_noise_matches_the_twin(model, cell, output):
    rng = np.random.default_rng(100 + VARIANTS.index((model, cell, output)))
    config = make_config(model, cell, output, rng)
    params = init_params(config, seed=4)
    noise = draw_noise(config, 8, 5, rng)
    state0 = tuple(rng.normal(size=(5, config.h_dim)) for _ in range(config.n_state))
    for s0 in (None, state0):
        ours = sample_with_noise(params, config, noise, state0=s0)
        twin = torch_twin.sample_with_noise(params, config, noise, state0=s0)
        assert rel_err(twin, ours) < RTOL
    if config.output_kind != "gauss":  # the draws really use several mixture components
        assert len(np.unique(ours[..., 0])) == ours[..., 0].size


def test_train_step_is_one_adam_step_on_our_gradients():
    """Adam's first step moves each weight by -lr * g / (|g| + eps_adam), with g our gradient."""
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=3, feat_dim=4, model="vrnn-gauss", cell="lstm")
    params = init_params(config, seed=5)
    x, mask, eps = make_batch(config, [3, 2], np.random.default_rng(5))
    result, cache = forward(params, config, x, mask, eps)
    loss, grads = result["loss"], backward(cache)
    model = torch_twin.from_params(params, config)
    lr = 1e-2
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-8)
    returned = torch_twin.train_step(model, optimizer, *(torch.from_numpy(a) for a in (x, mask, eps)))
    assert rel_err(returned, loss) < RTOL
    for name, view in model.named_views().items():
        g = grads[name]
        np.testing.assert_allclose(view.numpy(), params[name] - lr * g / (np.abs(g) + 1e-8), rtol=1e-9,
                                   atol=1e-12, err_msg=name)


def test_large_standard_deviation_preactivations_match_the_twin():
    """softplus(a) for a ~ 25: PyTorch's default softplus would be the identity there (off by exp(-25))."""
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=3, feat_dim=4, model="vrnn-gmm", n_mix=2)
    params = init_params(config, seed=6)
    for name in ("enc.sigma.b", "prior.sigma.b", "dec.sigma.b"):
        params[name] = params[name] + 25.0
    x, mask, eps = make_batch(config, [4, 3], np.random.default_rng(6))
    assert_twin_agrees(params, config, x, mask, eps)
