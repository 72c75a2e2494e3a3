"""A check shared by the density tests: float32 in gives float32 out, close to the float64 result."""
import numpy as np


def assert_float32_close_to_float64(forward, backward, inputs, seed=5):
    """``forward(**inputs) -> (out, cache)``, ``backward(dout, cache) -> tuple of input gradients``."""
    inputs32 = {k: v.astype(np.float32) for k, v in inputs.items()}
    inputs64 = {k: v.astype(np.float64) for k, v in inputs32.items()}
    out32, cache32 = forward(**inputs32)
    out64, cache64 = forward(**inputs64)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-5)
    dout = np.random.default_rng(seed).normal(size=out64.shape)
    grads32 = backward(dout.astype(np.float32), cache32)
    for name, g32, g64 in zip(inputs, grads32, backward(dout, cache64)):
        assert g32.dtype == np.float32, name
        np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-5 * np.abs(g64).max(), err_msg=name)
