"""The plain path (fast/jit.py): with MINIVRNN_FORCE_PLAIN_KERNELS=1 the self-check reports a mismatch, the kernels
compile with NumPy's exp/log and Numba's np.dot, one warning says so, and a tiny model still trains, with the
fast path's gradients."""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from minivrnn.fast import blas, vecmath

TRAIN = r"""
import json, sys, warnings
import numpy as np
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from minivrnn import VRNNConfig, init_params, loss_and_grads
    from minivrnn.fast.jit import plain_kernels
    from minivrnn.optim import Adam
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=8, feat_dim=8, n_layers=1, model="vrnn-gmm", n_mix=2, cell="gru")
    params = init_params(config, seed=3)
    rng = np.random.default_rng(0)
    T, B = 12, 4
    x = np.cumsum(rng.normal(size=(T, B, 2)) * 0.1, axis=0)
    mask = np.ones((T, B))
    eps = rng.normal(size=(T, B, 2))
    optimizer = Adam(lr=0.01)
    losses, first = [], None
    for step in range(25):
        loss, grads = loss_and_grads(params, config, x, mask, eps)
        first = first or {k: g.tolist() for k, g in grads.items()}
        assert all(np.all(np.isfinite(g)) for g in grads.values())
        optimizer.update(params, grads)
        losses.append(float(loss))
warned = [str(w.message) for w in caught if "self-check" in str(w.message)]
json.dump({"plain": plain_kernels(), "losses": losses, "grads": first, "warnings": warned}, sys.stdout)
"""


def _train(force_plain):
    env = dict(os.environ)
    env.pop("MINIVRNN_FORCE_PLAIN_KERNELS", None)
    if force_plain:
        env["MINIVRNN_FORCE_PLAIN_KERNELS"] = "1"
    r = subprocess.run([sys.executable, "-c", TRAIN], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT=1: nothing is compiled, no path to choose")
def test_the_forced_plain_path_warns_once_and_trains_like_the_fast_one():
    plain, fast = _train(True), _train(False)
    assert plain["plain"] and not fast["plain"]
    assert len(plain["warnings"]) == 1 and "MINIVRNN_FORCE_PLAIN_KERNELS" in plain["warnings"][0]
    assert fast["warnings"] == []
    losses = plain["losses"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    np.testing.assert_allclose(losses[0], fast["losses"][0], rtol=1e-10)
    for k in fast["grads"]:  # the same arithmetic up to the last few bits of exp and log
        np.testing.assert_allclose(plain["grads"][k], fast["grads"][k], rtol=1e-8, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(losses, fast["losses"], rtol=1e-6)


def test_the_self_checks_pass_here_and_catch_a_mismatch():
    assert vecmath.self_check() == [] and blas.self_check() == []
    wrong_exp = (lambda x: np.exp(x) * 1.001, np.log)
    assert vecmath.self_check(wrong_exp) == [f"vecmath.exp differs from NumPy's in {t}" for t in ("float32", "float64")]
    problems = blas.self_check(dot=lambda a, b: np.dot(a, b) + 1)
    assert len(problems) == 4 and all(p.startswith("blas.gemm differs from np.dot") for p in problems)
