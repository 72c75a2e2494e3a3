"""What the compiled GRU (gru.py) and LSTM (lstm.py) share: the packed gate layout and the per-step helpers.

The gates' names, shapes and initialisation are ops/gates.py's. Here they are packed side by side, gates in
PyTorch's order, so that one product computes every gate at once.
"""
import numpy as np

from ..ops.gates import PARTS, gate_param_specs  # noqa: F401  (shared, not compiled; the engine checks with it)
from .jit import kernel


def pack_gates(params, gates):
    """The gates side by side: W_i (I, nH), W_h (H, nH), b_i (nH,), b_h (nH,) for n = len(gates)."""
    return tuple(np.concatenate([params[p + g] for g in gates], axis=-1) for p in PARTS)


def unpack_gates(gates, W_i, W_h, b_i, b_h):
    """The inverse of ``pack_gates`` (used on gradients): the named arrays, each C-contiguous."""
    out = {}
    for p, packed in zip(PARTS, (W_i, W_h, b_i, b_h)):
        H = packed.shape[-1] // len(gates)
        for i, g in enumerate(gates):
            out[p + g] = np.ascontiguousarray(packed[..., i * H:(i + 1) * H])
    return out


@kernel
def masked_update(m, new, old, out):
    """out = m * new + (1 - m) * old, row b weighted by m[b] in {0, 1}: a padded row keeps ``old`` exactly."""
    one = out.dtype.type(1.0)
    for b in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[b, j] = m[b] * new[b, j] + (one - m[b]) * old[b, j]


@kernel
def masked_update_backward(m, dout, dnew, dold):
    """Backward of masked_update: dnew = m * dout, dold = (1 - m) * dout."""
    one = dout.dtype.type(1.0)
    for b in range(dout.shape[0]):
        for j in range(dout.shape[1]):
            dnew[b, j] = m[b] * dout[b, j]
            dold[b, j] = (one - m[b]) * dout[b, j]


@kernel
def copy_rows(src, dst):
    """dst = src for two (n, m) arrays, as a loop. The kernels copy with it instead of ``dst[:] = src``, which
    also compiles Numba's formatted shape-mismatch error: a noticeable part of a first run's compilation, for
    a copy (measured: docs/performance.md, "The kernel cache")."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]

