import numpy as np

from minivrnn.optim import Adam, clip_by_global_norm, global_norm


def test_first_adam_step_moves_each_weight_by_lr_against_its_gradient_sign():
    # After one step the bias-corrected m / sqrt(v) is g / |g| (up to eps): a step of exactly lr.
    params = {"w": np.array([1.0, -2.0, 3.0])}
    Adam(lr=0.1, eps=0.0).update(params, {"w": np.array([0.5, -4.0, 1e-3])})
    np.testing.assert_allclose(params["w"], [0.9, -1.9, 2.9], rtol=1e-12)


def test_adam_minimises_a_quadratic():
    params = {"w": np.array([3.0, -2.0])}
    opt = Adam(lr=0.05)
    for _ in range(2000):
        opt.update(params, {"w": 2 * (params["w"] - np.array([1.0, 0.5]))})
    np.testing.assert_allclose(params["w"], [1.0, 0.5], atol=1e-3)


def test_adam_state_round_trip_gives_identical_steps():
    rng = np.random.default_rng(0)
    grads = [{"w": rng.normal(size=3)} for _ in range(6)]
    a, pa = Adam(lr=0.01), {"w": np.zeros(3)}
    for g in grads:
        a.update(pa, g)
    b, pb = Adam(lr=0.01), {"w": np.zeros(3)}
    for g in grads[:3]:
        b.update(pb, g)
    c = Adam(lr=0.01)
    c.load_state_arrays(b.state_arrays())
    for g in grads[3:]:
        c.update(pb, g)
    np.testing.assert_array_equal(pa["w"], pb["w"])


def test_clipping_scales_to_the_max_norm_and_keeps_direction():
    grads = {"a": np.array([3.0]), "b": np.array([4.0, 0.0])}
    assert global_norm(grads) == 5.0
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped["a"], [0.6])
    np.testing.assert_allclose(clipped["b"], [0.8, 0.0])
    same, _ = clip_by_global_norm(grads, 10.0)
    assert same["a"][0] == 3.0
