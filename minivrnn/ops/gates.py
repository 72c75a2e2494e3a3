"""What the GRU (gru.py) and the LSTM (lstm.py) share: the names, shapes and initialisation of their gates.

Each recurrence names its weights ``W_i<gate>`` (in, H), ``W_h<gate>`` (H, H) and its biases ``b_i<gate>``,
``b_h<gate>`` (H,), gates in PyTorch's order (docs/equations.md, "GRU convention" and "LSTM convention").
"""
import numpy as np

PARTS = ("W_i", "W_h", "b_i", "b_h")  # input weights, state weights, input biases, state biases


def gate_keys(gates):
    """The parameter names for these gates: W_i<g> for every g, then W_h<g>, b_i<g>, b_h<g>."""
    return tuple(f"{p}{g}" for p in PARTS for g in gates)


def init_gates(rng, gates, n_in, n_hidden, dtype):
    """PyTorch's initialisation of GRUCell and LSTMCell: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / np.sqrt(n_hidden)
    shapes = {"W_i": (n_in, n_hidden), "W_h": (n_hidden, n_hidden), "b_i": (n_hidden,), "b_h": (n_hidden,)}
    return {k: rng.uniform(-bound, bound, size=shapes[k[:3]]).astype(dtype) for k in gate_keys(gates)}


def gate_param_specs(params, gates):
    """check_arrays specs for the parameters; they come first, so a wrong input or state is the one named."""
    return {k: (params[k], {"W_i": "I H", "W_h": "H H"}.get(k[:3], "H")) for k in gate_keys(gates)}
