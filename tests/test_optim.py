import numpy as np
import pytest

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


def _adam_by_numpy(p, m, v, g, lr, beta1, beta2, eps, step):
    """The readable reference: Kingma & Ba's Algorithm 1, one NumPy expression per line."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def test_adam_kernel_equals_the_numpy_formula_over_several_steps():
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=(4, 5))
    params, opt = {"w": p0.copy()}, Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6)
    p, m, v = p0, np.zeros_like(p0), np.zeros_like(p0)
    for step in range(1, 6):
        g = rng.normal(size=(4, 5))
        opt.update(params, {"w": g})
        p, m, v = _adam_by_numpy(p, m, v, g, 0.01, 0.8, 0.99, 1e-6, step)
    np.testing.assert_allclose(params["w"], p, rtol=1e-12)
    np.testing.assert_allclose(opt.m["w"], m, rtol=1e-12)
    np.testing.assert_allclose(opt.v["w"], v, rtol=1e-12)


def test_adam_keeps_float32_parameters_float32():
    params = {"w": np.ones(3, np.float32)}
    opt = Adam(lr=0.1)
    opt.update(params, {"w": np.array([1.0, -1.0, 0.5], np.float32)})
    assert params["w"].dtype == opt.m["w"].dtype == opt.v["w"].dtype == np.float32
    np.testing.assert_allclose(params["w"], [0.9, 1.1, 0.9], rtol=1e-6)


def test_global_norm_sums_float32_in_float64():
    # 1e6 entries of float32(0.1): a float64 running sum is off by at most n * 2^-53 ~ 1e-10 relative,
    # far below float32's own resolution (6e-8), which a float32 accumulation would not reach.
    g = {"a": np.full(10**6, 0.1, np.float32)}
    expected = np.sqrt(10**6 * np.float64(np.float32(0.1)) ** 2)
    assert abs(global_norm(g) - expected) / expected < 1e-10


def test_adam_follows_replaced_parameter_and_moment_arrays():
    # The kernel writes through cached flat views; a parameter or moment array swapped for a new one (a
    # checkpoint loaded into the dict, say) must be the one updated, with the same result as a fresh copy.
    grads = {"w": np.array([0.5, -4.0, 1e-3])}
    opt, params = Adam(lr=0.1), {"w": np.zeros(3)}
    opt.update(params, grads)
    twin_opt, twin_params = Adam(lr=0.1), {"w": params["w"].copy()}
    twin_opt.load_state_arrays(opt.state_arrays())
    params["w"] = params["w"].copy()  # a new array with the same values
    opt.load_state_arrays(opt.state_arrays())  # new moment arrays too
    opt.update(params, grads)
    twin_opt.update(twin_params, grads)
    np.testing.assert_array_equal(params["w"], twin_params["w"])
    assert not np.array_equal(params["w"], np.zeros(3))


def test_adam_updates_parameters_of_two_dtypes_each_by_the_formula():
    # float32 and float64 parameters form two groups (two kernel calls), each with its own flat moments.
    rng = np.random.default_rng(5)
    p32, p64 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=7)
    params = {"a": p32.copy(), "b": p64.copy(), "c": p32[0].copy()}
    opt = Adam(lr=0.01)
    ref = {k: (v.astype(np.float64), np.zeros(v.shape), np.zeros(v.shape)) for k, v in params.items()}
    for step in range(1, 4):
        grads = {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in params.items()}
        opt.update(params, grads)
        ref = {k: _adam_by_numpy(*ref[k][:1], *ref[k][1:], grads[k].astype(np.float64), 0.01, 0.9, 0.999, 1e-8,
                                 step) for k in ref}
    for k, (p, m, v) in ref.items():
        # float32: beta2 is rounded to float32 (0.99900001), so 1 - beta2 is 0.00099998713, 1.3e-5 from 0.001
        rtol = 1e-4 if params[k].dtype == np.float32 else 1e-12
        assert params[k].dtype == opt.m[k].dtype == opt.v[k].dtype
        np.testing.assert_allclose(params[k], p, rtol=rtol)
        np.testing.assert_allclose(opt.m[k], m, rtol=rtol)
        np.testing.assert_allclose(opt.v[k], v, rtol=rtol)


def test_adam_refuses_loaded_moments_of_the_wrong_shape():
    opt = Adam(lr=0.1)
    opt.load_state_arrays({"adam/step": np.array(1), "adam/m/w": np.zeros(2), "adam/v/w": np.zeros(2)})
    with pytest.raises(ValueError, match="w: Adam's moments have shape"):
        opt.update({"w": np.zeros(3)}, {"w": np.ones(3)})
