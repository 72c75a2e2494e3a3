"""What the GRU (gru.py) and the LSTM (lstm.py) share: the packed gate layout and the per-step helpers.

Each recurrence names its weights ``W_i<gate>`` (in, H), ``W_h<gate>`` (H, H), ``b_i<gate>``, ``b_h<gate>`` (H,)
and packs them side by side, gates in PyTorch's order, so that one product computes every gate at once.
"""
import numpy as np

from .jit import kernel


PARTS = ("W_i", "W_h", "b_i", "b_h")


def gate_keys(gates):
    """The parameter names for these gates: W_i<g> for every g, then W_h<g>, b_i<g>, b_h<g>."""
    return tuple(f"{p}{g}" for p in PARTS for g in gates)


def init_gates(rng, gates, n_in, n_hidden, dtype):
    """PyTorch's initialisation of GRUCell and LSTMCell: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / np.sqrt(n_hidden)
    shapes = {"W_i": (n_in, n_hidden), "W_h": (n_hidden, n_hidden), "b_i": (n_hidden,), "b_h": (n_hidden,)}
    return {k: rng.uniform(-bound, bound, size=shapes[k[:3]]).astype(dtype) for k in gate_keys(gates)}


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


def gate_param_specs(params, gates):
    """check_arrays specs for the parameters; they come first, so a wrong input or state is the one named."""
    return {k: (params[k], {"W_i": "I H", "W_h": "H H"}.get(k[:3], "H")) for k in gate_keys(gates)}


@kernel
def _masked_update(m, new, old, out):
    """out = m * new + (1 - m) * old, row b weighted by m[b] in {0, 1}: a padded row keeps ``old`` exactly."""
    one = out.dtype.type(1.0)
    for b in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[b, j] = m[b] * new[b, j] + (one - m[b]) * old[b, j]


@kernel
def _masked_update_backward(m, dout, dnew, dold):
    """Backward of _masked_update: dnew = m * dout, dold = (1 - m) * dout."""
    one = dout.dtype.type(1.0)
    for b in range(dout.shape[0]):
        for j in range(dout.shape[1]):
            dnew[b, j] = m[b] * dout[b, j]
            dold[b, j] = (one - m[b]) * dout[b, j]


@kernel
def _copy_rows(src, dst):
    """dst = src for two (n, m) arrays, as a loop. The kernels copy with it instead of ``dst[:] = src``, which
    also compiles Numba's formatted shape-mismatch error: ~2 s of the first run's compilation, for a copy."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]
