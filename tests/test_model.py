"""The whole model: gradient checks of every variant on the code path that trains, masks, truncated BPTT."""
import numpy as np
import pytest

from minivrnn import VRNNConfig, init_params, loss_and_grads
from minivrnn.gradcheck import gradcheck
from minivrnn.model import MODELS, forward

LENGTHS = [5, 3, 1]  # a ragged batch: T = 5, B = 3


def _batch(config, lengths=LENGTHS, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    T, B = max(lengths), len(lengths)
    x = rng.normal(size=(T, B, config.x_dim))
    if config.output_kind == "pen":
        x[..., 2] = rng.random((T, B)) < 0.3
    mask = (np.arange(T)[:, None] < np.array(lengths)[None, :]).astype(float)  # (T, B)
    x[mask == 0] = 7.0  # padding holds junk: it must not matter
    eps = rng.normal(size=(T, B, config.z_dim)) if config.latent else None
    cast = lambda a: None if a is None else a.astype(dtype)
    return cast(x), cast(mask), cast(eps)


def _small(model, cell="gru", output="auto", n_layers=1):
    x_dim = 3 if output == "pen" else 2
    return VRNNConfig(x_dim=x_dim, z_dim=2, h_dim=3, feat_dim=4, n_layers=n_layers, model=model, n_mix=2,
                      cell=cell, output=output)


VARIANTS = [(m, c, "auto") for m in MODELS for c in ("gru", "lstm")] + [
    ("vrnn-gmm", "gru", "pen"), ("rnn-gmm", "lstm", "pen")]


@pytest.mark.parametrize("model, cell, output", VARIANTS)
def test_whole_model_gradients(model, cell, output):
    config = _small(model, cell, output)
    params = init_params(config, seed=1)
    x, mask, eps = _batch(config)

    def loss(**p):
        return np.array(loss_and_grads(p, config, x, mask, eps)[0])

    def grads(dloss, **p):
        return {k: dloss * g for k, g in loss_and_grads(p, config, x, mask, eps)[1].items()}

    errors = gradcheck(loss, grads, params)
    assert set(errors) == set(params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, (worst, errors[worst])


def test_two_hidden_layers_gradients():
    config = _small("vrnn-gauss", n_layers=2)
    params = init_params(config, seed=2)
    x, mask, eps = _batch(config)
    errors = gradcheck(lambda **p: np.array(loss_and_grads(p, config, x, mask, eps)[0]),
                       lambda d, **p: {k: d * g for k, g in loss_and_grads(p, config, x, mask, eps)[1].items()},
                       params)
    assert max(errors.values()) < 1e-6


@pytest.mark.parametrize("model", ["vrnn-gauss", "rnn-gmm"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_is_the_same_as_separate_sequences(model, cell):
    """A ragged batch's loss is the mean of each sequence's own loss (padded steps count for nothing)."""
    config = _small(model, cell)
    params = init_params(config, seed=3)
    x, mask, eps = _batch(config)
    batch_loss = loss_and_grads(params, config, x, mask, eps)[0]
    alone = []
    for b, n in enumerate(LENGTHS):
        e = None if eps is None else eps[:n, b:b + 1]
        alone.append(loss_and_grads(params, config, x[:n, b:b + 1], mask[:n, b:b + 1], e)[0])
    np.testing.assert_allclose(batch_loss, np.mean(alone), rtol=1e-12)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padded_steps_do_not_move_the_state(cell):
    config = _small("vrnn-gauss", cell)
    params = init_params(config, seed=4)
    x, mask, eps = _batch(config)
    full, _ = forward(params, config, x, mask, eps)
    short, _ = forward(params, config, x[:1, 2:], mask[:1, 2:], eps[:1, 2:])  # sequence 2 has length 1
    for s_full, s_short in zip(full["final_state"], short["final_state"]):
        np.testing.assert_allclose(s_full[2:], s_short, rtol=1e-12)
    assert np.all(full["kl"][mask == 0] == 0) and np.all(full["nll"][mask == 0] == 0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_truncated_bptt_chunks_add_up_to_the_whole_sequence(cell):
    config = _small("vrnn-gmm", cell)
    params = init_params(config, seed=5)
    x, mask, eps = _batch(config, lengths=[5, 5, 5])
    whole, _ = forward(params, config, x, mask, eps)
    first, _ = forward(params, config, x[:2], mask[:2], eps[:2])
    second, _ = forward(params, config, x[2:], mask[2:], eps[2:], state0=first["final_state"])
    np.testing.assert_allclose(first["loss"] + second["loss"], whole["loss"], rtol=1e-12)


def test_float32_training_dtype_agrees_with_float64():
    config = _small("vrnn-gmm")
    p64 = init_params(config, seed=6)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    x, mask, eps = _batch(config)
    l64, g64 = loss_and_grads(p64, config, x, mask, eps)
    l32, g32 = loss_and_grads(p32, config, *(a.astype(np.float32) for a in (x, mask, eps)))
    assert all(g.dtype == np.float32 for g in g32.values())
    np.testing.assert_allclose(l32, l64, rtol=1e-4)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-4 * np.abs(g64[k]).max(), err_msg=k)


def test_init_params_names_and_shapes_follow_the_contract():
    config = VRNNConfig(x_dim=5, z_dim=3, h_dim=7, feat_dim=6, n_layers=2, model="vrnn-gmm", n_mix=4)
    p = init_params(config, seed=0)
    assert p["phi_x.l0.W"].shape == (5, 6) and p["phi_x.l1.W"].shape == (6, 6)
    assert p["enc.l0.W"].shape == (6 + 7, 6) and p["dec.l0.W"].shape == (6 + 7, 6)
    assert p["prior.l0.W"].shape == (7, 6) and p["prior.mu.W"].shape == (6, 3)
    assert p["dec.logits.W"].shape == (6, 4) and p["dec.mu.W"].shape == (6, 20)
    assert p["gru.W_ir"].shape == (12, 7) and p["gru.W_hn"].shape == (7, 7) and p["gru.b_hz"].shape == (7,)
    rnn = init_params(VRNNConfig(x_dim=5, h_dim=7, feat_dim=6, model="rnn-gauss", cell="lstm"), seed=0)
    assert not any(k.startswith(("phi_z", "prior", "enc")) for k in rnn)
    assert rnn["dec.l0.W"].shape == (7, 6) and rnn["lstm.W_ii"].shape == (6, 7)
    vi = init_params(VRNNConfig(x_dim=5, model="vrnn-i-gauss"), seed=0)
    assert not any(k.startswith("prior") for k in vi)
    a, b = init_params(config, seed=9), init_params(config, seed=9)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_inputs_are_value_errors_naming_the_argument():
    config = _small("vrnn-gauss")
    params = init_params(config)
    x, mask, eps = _batch(config)
    with pytest.raises(ValueError, match=r"x: expected shape \(T, B, 2\)"):
        loss_and_grads(params, config, x[..., :1], mask, eps)
    with pytest.raises(ValueError, match=r"mask: expected shape \(T, B\) = \(5, 3\)"):
        loss_and_grads(params, config, x, mask[:4], eps)
    with pytest.raises(ValueError, match="eps: expected shape"):
        loss_and_grads(params, config, x, mask, None)
    with pytest.raises(ValueError, match="model: expected one of"):
        VRNNConfig(x_dim=2, model="vrnn")
    for empty in (np.s_[:0], np.s_[:, :0]):  # no time step, or no sequence: an error, not an empty loss
        with pytest.raises(ValueError, match="x: expected at least one time step and one sequence"):
            loss_and_grads(params, config, x[empty], mask[empty], eps[empty])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("n_layers, layout", [(1, "one block"), (2, "one block"), (1, "tiles"), (2, "tiles"),
                                              (1, "tiles from pieces"), (2, "tiles from pieces")])
def test_the_compiled_chain_matches_the_readable_engine_in_every_layout(cell, n_layers, layout, monkeypatch):
    """The compiled chain (minivrnn/fast/chain.py) inside the whole training step, against the readable engine
    (minivrnn/readable.py); ``layout`` says how the loop's products multiply by their weights (fast/matmul.py):
    each weight whole, or in tiles (the size limits lowered so that even these small weights are cut, with a
    ragged last tile both ways), the tiles copied from the joined weights or, where the pieces are whole blocks
    wide, from the parameters themselves."""
    import minivrnn.fast.matmul as mm

    h_dim = 5 if layout == "one block" else 8
    if layout != "one block":  # W_hcat = [W_enc0h | W_h] (8, 4 + 3 or 4 x 8), tiles 3, 3 and 2 rows deep
        monkeypatch.setattr(mm, "TILED_MIN_WORK", 1)
        monkeypatch.setattr(mm, "TILE_DEPTHS", (3,))
        width = 16 if layout == "tiles" else 4  # 16: the pieces (4, then 8 wide) are joined; 4: copied as they are
        monkeypatch.setattr(mm, "TILE_WIDTH", width)
        pieces = [[np.zeros((8, 4))] + [np.zeros((8, 8))] * (4 if cell == "lstm" else 3)]
        tiles = mm.chain_operand(pieces, 4)  # 8 rows deep: tiles of 3, 3 and 2 rows (padded to 3)
        assert tiles.shape == (-(-sum(p.shape[1] for p in pieces[0]) // width), 3, 3, width)
        copied = []  # the arrays copied into blocks: joined weights, or the pieces themselves
        copy = mm._copy_column_blocks
        monkeypatch.setattr(mm, "_copy_column_blocks", lambda W, blocks: copied.append(W) or copy(W, blocks))
    config = VRNNConfig(x_dim=2, z_dim=3, h_dim=h_dim, feat_dim=4, n_layers=n_layers, model="vrnn-gauss",
                        cell=cell)
    params = init_params(config, seed=7)
    rng = np.random.default_rng(8)
    T, B = 6, 4
    x = rng.normal(size=(T, B, config.x_dim))
    mask = (np.arange(T)[:, None] < np.array([6, 2, 4, 1])[None]).astype(float)
    eps = rng.normal(size=(T, B, config.z_dim))
    state0 = tuple(rng.normal(size=(B, config.h_dim)) * 0.5 for _ in range(config.n_state))
    fast, slow = (loss_and_grads(params, config, x, mask, eps, state0=state0, engine=engine)
                  for engine in ("compiled", "readable"))
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-12)
    assert set(fast[1]) == set(slow[1])
    for k in fast[1]:
        np.testing.assert_allclose(fast[1][k], slow[1][k], rtol=1e-10, atol=1e-12, err_msg=k)
    if layout != "one block":  # W_hcat's first piece, W_enc0h (8, 4), copied on its own only in whole blocks of 4
        W_enc0h = [W for W in copied if W.shape == (8, 4) and np.shares_memory(W, params["enc.l0.W"])]
        assert len(W_enc0h) == (1 if layout == "tiles from pieces" else 0)


def test_the_loops_blocks_are_rewritten_into_the_same_arrays_at_every_step(monkeypatch):
    """chain.py keeps the loop's blocks of weights in reused arrays (on 2 MiB pages, memory.py): one model's
    loss and gradients must not depend on what another model's step left in them."""
    import minivrnn.fast.chain as chain
    import minivrnn.fast.matmul as mm

    monkeypatch.setattr(mm, "TILED_MIN_WORK", 1)  # (so that this small model's weights are cut into blocks)
    monkeypatch.setattr(mm, "TILE_WIDTH", 4)
    config = VRNNConfig(x_dim=3, z_dim=2, h_dim=8, feat_dim=4, model="vrnn-gauss")
    rng = np.random.default_rng(3)
    x, mask, eps = rng.normal(size=(5, 3, 3)), np.ones((5, 3)), rng.normal(size=(5, 3, 2))
    first, other = init_params(config, seed=1), init_params(config, seed=2)
    loss, grads = loss_and_grads(first, config, x, mask, eps)
    tiles = chain._operands(chain._weights(first, config, np.float64)[1], ["W_hcat"], 3, 1)["W_hcat"]
    loss_and_grads(other, config, x, mask, eps)
    again, grads_again = loss_and_grads(first, config, x, mask, eps)
    assert again == loss
    for k in grads:
        np.testing.assert_array_equal(grads_again[k], grads[k], err_msg=k)
    assert chain._operands(chain._weights(first, config, np.float64)[1], ["W_hcat"], 3, 1)["W_hcat"] is tiles


@pytest.mark.parametrize("cell", ["gru", "lstm"])  # each cell has its own entry points (chain.FORWARD, BACKWARD)
def test_results_do_not_depend_on_the_thread_count(monkeypatch, cell):
    """The batch is split into one chunk per thread, and the products over all T*B rows into one block of rows
    per thread; each sequence's arithmetic is the same either way (up to the order of the weight-gradient sum)."""
    import numba

    import minivrnn.fast.chain
    import minivrnn.fast.matmul

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core (NUMBA_NUM_THREADS < 2): there is no second thread to compare with")
    monkeypatch.setattr(minivrnn.fast.chain, "PARALLEL_MIN_WORK", 0)  # split even this small batch
    monkeypatch.setattr(minivrnn.fast.matmul, "PARALLEL_MIN_WORK", 0)  # and even these small products
    config = _small("vrnn-gmm", cell)
    params = init_params(config, seed=9)
    x, mask, eps = _batch(config, lengths=[5, 4, 3, 5, 2, 1])
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            results.append(loss_and_grads(params, config, x, mask, eps))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    (l1, g1), (l2, g2) = results
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_saturated_correlation_stays_finite_in_float32():
    """rho = tanh(a) would round to exactly 1 for a > ~9 in float32; a is clipped to +-8 (heads.RHO_CLIP)."""
    config = _small("vrnn-gmm", output="pen")
    params = {k: v.astype(np.float32) for k, v in init_params(config, seed=10).items()}
    params["dec.rho.b"] = params["dec.rho.b"] + np.float32(50.0)
    x, mask, eps = (a.astype(np.float32) for a in _batch(config))
    loss, grads = loss_and_grads(params, config, x, mask, eps)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert np.all(grads["dec.rho.b"] == 0)  # beyond the clip the correlation no longer moves


@pytest.mark.parametrize("model, cell", [("vrnn-gmm", "lstm"), ("vrnn-gauss", "gru"), ("rnn-gauss", "gru")])
def test_gradients_with_an_initial_state_and_a_kl_weight(model, cell):
    """The truncated-BPTT entry (state0 carried from a previous chunk) and KL warm-up (kl_weight) on the
    training code path: the same float64 finite-difference check as the plain case."""
    config = _small(model, cell)
    params = init_params(config, seed=11)
    x, mask, eps = _batch(config)
    rng = np.random.default_rng(12)
    state0 = tuple(rng.uniform(-0.8, 0.8, size=(len(LENGTHS), config.h_dim)) for _ in range(config.n_state))
    kw = dict(state0=state0, kl_weight=0.3)
    errors = gradcheck(lambda **p: np.array(loss_and_grads(p, config, x, mask, eps, **kw)[0]),
                       lambda d, **p: {k: d * g for k, g in loss_and_grads(p, config, x, mask, eps, **kw)[1].items()},
                       params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, (worst, errors[worst])
    if config.latent:  # the weight really scales the KL term: loss(w) = nll + w * kl
        full = forward(params, config, x, mask, eps, state0=state0)[0]
        np.testing.assert_allclose(loss_and_grads(params, config, x, mask, eps, **kw)[0],
                                   (full["nll"].sum() + 0.3 * full["kl"].sum()) / len(LENGTHS), rtol=1e-12)
