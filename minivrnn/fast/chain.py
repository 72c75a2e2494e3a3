"""The VRNN's sequential chain, compiled: encoder (eq. 8) -> z_t -> phi_z -> recurrence (eq. 6).

Only this chain needs a loop over time: z_t depends on h_{t-1}, and h_t on z_t. Everything else (phi_x of
every frame, the prior, the decoder, the KL and the log-likelihood) runs over all T*B rows at once in
engine.py. Read it beside the readable engine (minivrnn/readable.py): one time step here is the sequential
part of ``vrnn_step_forward``, written as step functions in the same order:

    here (one time step)            in vrnn_step_forward                what it computes
    state_products_step_forward     (inside the two below)              [a_enc0 | a_h] = h_{t-1} @ [W_enc0h | W_h]
    encoder_step_forward            mlp_forward(enc), heads             eq. (8): mu_z, and a_sig for sigma_z
    reparam_step_forward            (the head's softplus), reparam      sigma_z; z_t = mu_z + sigma_z * eps_t
    phi_z_step_forward              mlp_forward(phi_z)                  phi_z(z_t)
    gru_cell_step_forward           cell_forward                        eq. (6): h_t (and c_t, LSTM)
      or lstm_cell_step_forward
    masked_state_step_forward       masked_state_forward                padded steps keep h_{t-1} (and c_{t-1})

Backprop through time runs their ``_step_backward`` twins in the mirror order, as ``vrnn_step_backward`` runs
the components' backward functions, newest step first, carrying dh (and dc) = d loss / d state back to the step
before. The loops' arguments are named records (``ChainInputs``, ``ChainWeights``, ``ChainStore``, ...), so
each step function names the arrays it reads and writes. The step functions are inlined into the loops that
call them (``loop_step``, jit.py): each loop still compiles as one function.

Each cell has its own entry points: ``gru_chain_forward`` / ``gru_chain_backward`` run the chain over a block
of rows of the batch, serially; ``gru_chain_forward_parallel`` / ``gru_chain_backward_parallel`` split the
batch into chunks run in parallel (``prange``), each chunk writing only its own rows (sequences are
independent). The same four for the LSTM. Only the entry points a model uses are compiled: a small GRU model
never compiles the LSTM's, nor the parallel ones.

What makes it fast, besides being compiled (figures: docs/performance.md, "The sequential chain in compiled
loops"):
- Forward keeps every pre-activation's input (``ChainStore``), so that after the backward loop each weight
  gradient is one matrix product over all T*B rows: nothing is accumulated inside the loop.
- h_{t-1} and phi_x(x_t) each feed two readers (encoder layer 0 and the cell); each goes through one product
  for both (phi_x's before the loop, over all rows).
- The loop's products have only B rows each; they multiply by their weight in tiles small enough for
  OpenBLAS's unpacked small-matrix path and the core's first-level cache (``dot_blocks``, matmul.py).
- Element-wise passes run over row views or over one step's contiguous run of entries, so that they vectorise.
"""
from contextlib import contextmanager
from functools import partial
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from . import gru, lstm
from .activations import softplus_kernel
from .gru import gru_gates_step, gru_gates_step_backward
from .jit import KERNEL_OPTIONS, kernel, loop_step
from .lstm import lstm_gates_step, lstm_gates_step_backward
from .matmul import chain_operand, dot_blocks, matmul, matmul_tn, sum_rows
from .memory import Workspace
from .recurrent import copy_rows, masked_update, masked_update_backward
from .threads import n_chunks

# Shapes: T steps, B sequences, F = feat_dim, H = h_dim, Z = z_dim, L = n_layers, G = 3H (GRU) or 4H (LSTM).
# Hc is the width of the LSTM's cell state c: H for the LSTM, 0 for the GRU (whose arrays for c are empty).


# --- the records the loops read and write ---------------------------------------------------------------

class ChainInputs(NamedTuple):
    """What the forward loop reads besides the weights."""
    ax: np.ndarray  # (T, B, F + G): phi_x(x_t) @ [W_enc0x | W_ix], phi_x's side of encoder layer 0 and of the cell
    eps: np.ndarray  # (T, B, Z): the noise of the reparameterisation
    mask: np.ndarray  # (T, B): 1 on real steps, 0 on padding
    h0: np.ndarray  # (B, H): the state before step 0
    c0: np.ndarray  # (B, Hc)


class ChainWeights(NamedTuple):
    """The forward loop's parameters. The four weights named W_* are ``chain_operand``s (matmul.py): W in tiles,
    for ``dot_blocks``; the stacks of further layers (enc_W, z_W) are plain arrays, for ``np.dot``."""
    b_x: np.ndarray  # (F + G,): the biases of encoder layer 0 and of the cell's input side [b_enc0 | b_i]
    W_hcat: np.ndarray  # [W_enc0h | W_h] (H, F + G): the rows of both that read h_{t-1}
    b_h: np.ndarray  # (G,)
    enc_W: np.ndarray  # (L - 1, F, F): the encoder's layers after the first
    enc_b: np.ndarray  # (L - 1, F)
    W_head: np.ndarray  # [W_mu | W_sigma] (F, 2Z): the encoder's two heads
    b_head: np.ndarray  # (2Z,)
    W_z0: np.ndarray  # phi_z's first layer (Z, F)
    b_z0: np.ndarray  # (F,)
    z_W: np.ndarray  # (L - 1, F, F): phi_z's layers after the first
    z_b: np.ndarray  # (L - 1, F)
    W_iz: np.ndarray  # (F, G): the rows of the cell's input weights W_i that read phi_z(z_t)
    sigma_min: float  # added to every standard deviation


class ChainStore(NamedTuple):
    """What forward keeps for backward, every step's (and the final state)."""
    h: np.ndarray  # (T + 1, B, H): h[t] is the state before step t, h_{t-1}; h[T] is the final state
    c: np.ndarray  # (T + 1, B, Hc): the same for the LSTM's c
    enc_act: np.ndarray  # (L, T, B, F): the encoder's layers' outputs
    q_mu: np.ndarray  # (T, B, Z): the posterior's mean mu_z
    q_sigma: np.ndarray  # (T, B, Z): and its standard deviation sigma_z
    slope: np.ndarray  # (T, B, Z): d sigma_z / d a_sig, softplus's slope (a sigmoid)
    z: np.ndarray  # (T, B, Z)
    pz_act: np.ndarray  # (L, T, B, F): phi_z's layers' outputs; pz_act[L - 1] is phi_z(z_t)
    a_h: np.ndarray  # (T, B, G): the cell's hidden-side pre-activations h_{t-1} @ W_h + b_h
    gates: np.ndarray  # (T, B, G): the cell's gates
    tanh_c: np.ndarray  # (T, B, Hc): the LSTM's tanh(c_t)


class ChainWeightsT(NamedTuple):
    """The backward loop's parameters: the transposes of the forward loop's weights, those named W_* as
    ``chain_operand``s. h_{t-1}'s two readers stay apart here (two products, their gradients added)."""
    W_enc0hT: np.ndarray  # (F, H)
    W_hT: np.ndarray  # (G, H)
    enc_WT: np.ndarray  # (L - 1, F, F)
    W_headT: np.ndarray  # (2Z, F)
    W_z0T: np.ndarray  # (F, Z)
    z_WT: np.ndarray  # (L - 1, F, F)
    W_izT: np.ndarray  # (G, F)


class ChainUpstream(NamedTuple):
    """The gradients reaching the chain's outputs from outside it (engine.py), every step's."""
    dpz: np.ndarray  # (T, B, F): d phi_z(z_t), from the decoder
    dh: np.ndarray  # (T, B, H): d h_{t-1}, from the prior and the decoder
    dq_mu: np.ndarray  # (T, B, Z): d mu_z, from the KL
    dq_sigma: np.ndarray  # (T, B, Z): d sigma_z, from the KL


class ChainGrads(NamedTuple):
    """What backward writes: every step's pre-activation gradients (the weight gradients are products of these
    with the stored inputs, after the loop), and the gradient of the initial state."""
    d_enc: np.ndarray  # (L, T, B, F): d of each encoder layer's pre-activation
    d_head: np.ndarray  # (T, B, 2Z): d [a_mu | a_sig]
    d_pz: np.ndarray  # (L, T, B, F): d of each phi_z layer's pre-activation
    da_i: np.ndarray  # (T, B, G): d a_i (for the LSTM, the same array as da_h: the gates read a_i + a_h)
    da_h: np.ndarray  # (T, B, G): d a_h
    dh0: np.ndarray  # (B, H)
    dc0: np.ndarray  # (B, Hc)


class ForwardWork(NamedTuple):
    """One block of rows' scratch arrays in the forward loop, nb rows each, reused at every step."""
    ah_cat: np.ndarray  # (nb, F + G): [a_enc0 | a_h] before biases
    a_f: np.ndarray  # (nb, F): a hidden layer's product
    a_head: np.ndarray  # (nb, 2Z): [a_mu | a_sig] before biases
    a_sig: np.ndarray  # (nb * Z,): a_sig + b_sigma, the block's rows in one run
    a_i: np.ndarray  # (nb, G): the cell's input-side pre-activation
    # ChainStore's q_mu, q_sigma, slope and z and ChainInputs' eps as flat views (T * B * Z,), made once: in each,
    # one step's rows of a block are one run of entries
    q_mu_flat: np.ndarray
    q_sigma_flat: np.ndarray
    slope_flat: np.ndarray
    z_flat: np.ndarray
    eps_flat: np.ndarray


class BackwardWork(NamedTuple):
    """One block of rows' arrays in the backward loop, nb rows each: dh and dc carry d loss / d state back."""
    dh: np.ndarray  # (nb, H): d h_t on entry to step t, d h_{t-1} on its exit
    dc: np.ndarray  # (nb, Hc)
    dh_new: np.ndarray  # (nb, H): d of the cell's new state, before the mask
    dc_new: np.ndarray  # (nb, Hc)
    dh_keep: np.ndarray  # (nb, H): d h_{t-1} through a padded step's carry
    dc_keep: np.ndarray  # (nb, Hc)
    dh_gates: np.ndarray  # (nb, H): d h_{t-1} through the GRU's gates (u * dh'); zeros for the LSTM
    dc_gates: np.ndarray  # (nb, Hc): d c_{t-1} through the LSTM's gates
    dp: np.ndarray  # (nb, F): d phi_z(z_t), then d of each phi_z layer going down
    de: np.ndarray  # (nb, F): d of the encoder's last layer, then of each layer going down
    d_below: np.ndarray  # (nb, F): a layer's gradient to the layer below it
    dz: np.ndarray  # (nb, Z)
    dh_enc: np.ndarray  # (nb, H): d h_{t-1} through encoder layer 0
    dh_cell: np.ndarray  # (nb, H): d h_{t-1} through the cell's a_h


# --- from Python ----------------------------------------------------------------------------------------

def chain_forward(params, config, px, mask, eps, state0):
    """Run the chain over time. px (T, B, F) = phi_x(x), mask (T, B), eps (T, B, Z), state0 = (h0,) or
    (h0, c0). Returns (out, cache) with out = {h_prevs (T, B, H), pz (T, B, F), q_mu, q_sigma (T, B, Z),
    final_state}."""
    T, B, F = px.shape
    H, Z, L, dtype = config.h_dim, config.z_dim, config.n_layers, px.dtype
    is_lstm = config.cell == "lstm"
    w, loop = _weights(params, config, dtype)
    G = w["b_h"].shape[0]
    Hc = H if is_lstm else 0  # the cell state c exists only for the LSTM (zero-width arrays otherwise)
    # phi_x's side of encoder layer 0 and of the recurrence, [ax_enc | ax_cell]: one product for both readers
    ax = matmul(px.reshape(T * B, F), w["W_xcat"])  # (their biases are added in the loop: one pass fewer)
    inputs = ChainInputs(ax.reshape(T, B, F + G), np.ascontiguousarray(eps), np.ascontiguousarray(mask),
                         np.ascontiguousarray(state0[0]),
                         np.ascontiguousarray(state0[1]) if is_lstm else np.zeros((B, 0), dtype))
    chunks = n_chunks(B, B * H * (F + G), PARALLEL_MIN_WORK)
    b = _operands(loop, ("W_hcat", "W_head", "W_z0", "W_iz"), B, chunks)
    weights = ChainWeights(w["b_x"], b["W_hcat"], w["b_h"], w["enc_W"], w["enc_b"], b["W_head"], w["b_head"],
                           b["W_z0"], w["b_z0"], w["z_W"], w["z_b"], b["W_iz"], dtype.type(config.sigma_min))
    store = ChainStore(
        h=np.empty((T + 1, B, H), dtype), c=np.empty((T + 1, B, Hc), dtype), enc_act=np.empty((L, T, B, F), dtype),
        q_mu=np.empty((T, B, Z), dtype), q_sigma=np.empty((T, B, Z), dtype), slope=np.empty((T, B, Z), dtype),
        z=np.empty((T, B, Z), dtype), pz_act=np.empty((L, T, B, F), dtype), a_h=np.empty((T, B, G), dtype),
        gates=np.empty((T, B, G), dtype), tanh_c=np.empty((T, B, Hc), dtype))
    _run(FORWARD[config.cell], chunks, B, inputs, weights, store)
    final = (store.h[T].copy(), store.c[T].copy()) if is_lstm else (store.h[T].copy(),)
    out = {"h_prevs": store.h[:T], "pz": store.pz_act[L - 1], "q_mu": store.q_mu, "q_sigma": store.q_sigma,
           "final_state": final}
    return out, (config, px, inputs, w, loop, store)


def chain_backward(cache, dpz, dh_prevs, dq_mu, dq_sigma):
    """Backprop through time along the chain. Inputs are the gradients reaching the chain's outputs from
    outside it (the decoder's d phi_z(z_t), the prior's and decoder's d h_{t-1}, the KL's d mu_z, d sigma_z).
    Returns (dpx (T, B, F), grads keyed by full parameter names)."""
    config, px, inputs, w, loop, s = cache
    (T, B, F), L, dtype = px.shape, config.n_layers, px.dtype
    H, G, Hc = config.h_dim, w["b_h"].shape[0], s.c.shape[2]
    chunks = n_chunks(B, B * H * (F + G), PARALLEL_MIN_WORK)
    b = _operands(loop, ("W_enc0hT", "W_hT", "W_headT", "W_z0T", "W_izT"), B, chunks)
    weights = ChainWeightsT(b["W_enc0hT"], b["W_hT"], w["enc_WT"], b["W_headT"], b["W_z0T"], w["z_WT"], b["W_izT"])
    upstream = ChainUpstream(*(np.ascontiguousarray(a) for a in (dpz, dh_prevs, dq_mu, dq_sigma)))
    da_h = np.empty((T, B, G), dtype)
    d = ChainGrads(d_enc=np.empty((L, T, B, F), dtype), d_head=np.empty((T, B, 2 * config.z_dim), dtype),
                   d_pz=np.empty((L, T, B, F), dtype),
                   da_i=da_h if config.cell == "lstm" else np.empty((T, B, G), dtype),  # the LSTM: one gradient
                   da_h=da_h, dh0=np.empty((B, H), dtype), dc0=np.empty((B, Hc), dtype))
    _run(BACKWARD[config.cell], chunks, B, inputs, weights, s, upstream, d)
    return _input_and_weight_grads(config, px, w, s, d)


def _run(entry_points, chunks, B, *records):
    """Run a loop's serial entry point over all B rows, or its parallel one in ``chunks`` chunks."""
    serial, parallel = entry_points
    if chunks == 1:
        serial(0, B, *records)
        return
    with _threads(chunks):
        parallel(chunks, *records)


def _input_and_weight_grads(config, px, w, s, d):
    """After the loop: d phi_x(x) and every weight gradient, each one product over all N = T*B rows."""
    (T, B, F), L, N = px.shape, config.n_layers, px.shape[0] * px.shape[1]
    rows = lambda a: a.reshape(N, a.shape[-1])  # (T, B, X) -> (N, X)
    grads = {}

    def linear(name, inputs, dout):
        grads[f"{name}.W"], grads[f"{name}.b"] = matmul_tn(rows(inputs), rows(dout)), sum_rows(rows(dout))

    def side_by_side_tn(inputs, dout):
        """[a_1 | a_2 | ...].T @ dout, the gradient of a weight that read its inputs side by side: each input's
        rows of it written in place (joining the inputs first would be one more copy of them)."""
        out = np.empty((sum(a.shape[-1] for a in inputs), dout.shape[-1]), dout.dtype)
        i0 = 0
        for a in inputs:
            matmul_tn(rows(a), rows(dout), out=out[i0:i0 + a.shape[-1]])
            i0 += a.shape[-1]
        return out

    h_prev = s.h[:T]  # h_{t-1} of every step
    grads["enc.l0.W"] = side_by_side_tn([px, h_prev], d.d_enc[0])  # enc saw [phi_x(x_t), h_{t-1}]
    grads["enc.l0.b"] = sum_rows(rows(d.d_enc[0]))
    for l in range(1, L):
        linear(f"enc.l{l}", s.enc_act[l - 1], d.d_enc[l])
    Z = config.z_dim  # the encoder's two heads sat side by side, [mu | sigma]: one product, then split
    head_W, head_b = matmul_tn(rows(s.enc_act[L - 1]), rows(d.d_head)), sum_rows(rows(d.d_head))
    grads["enc.mu.W"], grads["enc.sigma.W"] = (np.ascontiguousarray(head_W[:, :Z]),
                                               np.ascontiguousarray(head_W[:, Z:]))
    grads["enc.mu.b"], grads["enc.sigma.b"] = head_b[:Z], head_b[Z:]
    linear("phi_z.l0", s.z, d.d_pz[0])
    for l in range(1, L):
        linear(f"phi_z.l{l}", s.pz_act[l - 1], d.d_pz[l])
    da_i, da_h = rows(d.da_i), rows(d.da_h)
    module = lstm if config.cell == "lstm" else gru
    W_i = side_by_side_tn([px, s.pz_act[L - 1]], da_i)  # the cell saw [phi_x(x_t), phi_z(z_t)]
    cell = module.unpack(W_i, matmul_tn(rows(h_prev), da_h), sum_rows(da_i), sum_rows(da_h))
    grads.update({f"{config.cell}.{k}": v for k, v in cell.items()})
    dpx = matmul(rows(d.d_enc[0]), w["W_enc0x"].T) + matmul(da_i, w["W_ix"].T)  # (N, F): phi_x fed both
    return dpx.reshape(T, B, F), grads


def _weights(params, config, dtype):
    """The chain's weights as the kernels read them: (w, loop). ``w`` holds the arrays passed as they are;
    ``loop`` the weights the loop multiplies by, left in pieces (the parameters themselves, or their transposes
    for backward) that ``_operands`` copies straight into the loop's tile layout: a joined copy first would be
    one more pass over the weights every step."""
    F, L, cell = config.feat_dim, config.n_layers, config.cell
    gates = (lstm if cell == "lstm" else gru).GATES
    W_i = [params[f"{cell}.W_i{g}"] for g in gates]  # each (F + F, H): the rows for phi_x(x_t), then phi_z(z_t)
    W_h = [params[f"{cell}.W_h{g}"] for g in gates]  # each (H, H)
    b_i = np.concatenate([params[f"{cell}.b_i{g}"] for g in gates])
    b_h = np.concatenate([params[f"{cell}.b_h{g}"] for g in gates])
    if cell == "lstm":  # both biases sit inside the one pre-activation a_i + a_h
        b_i, b_h = b_i + b_h, np.zeros_like(b_h)
    W_enc0, W_mu, W_sig = params["enc.l0.W"], params["enc.mu.W"], params["enc.sigma.W"]  # W_enc0 (F + H, F)
    stack = lambda name: (np.stack([params[f"{name}.l{l}.W"] for l in range(1, L)]) if L > 1
                          else np.empty((0, F, F), dtype))
    stack_b = lambda name: (np.stack([params[f"{name}.l{l}.b"] for l in range(1, L)]) if L > 1
                            else np.empty((0, F), dtype))
    W_xcat = np.concatenate([W_enc0[:F]] + [W[:F] for W in W_i], axis=1)  # (F, F + G): phi_x's two readers
    w = {
        "W_xcat": W_xcat, "W_enc0x": W_xcat[:, :F], "W_ix": W_xcat[:, F:],
        "b_x": np.concatenate([params["enc.l0.b"], b_i]), "b_h": b_h,
        "enc_W": stack("enc"), "enc_b": stack_b("enc"), "z_W": stack("phi_z"), "z_b": stack_b("phi_z"),
        "b_head": np.concatenate([params["enc.mu.b"], params["enc.sigma.b"]]),
        "b_z0": np.ascontiguousarray(params["phi_z.l0.b"]),  # (the rest are new arrays, contiguous)
    }
    for name in ("enc_W", "z_W"):
        w[name + "T"] = np.ascontiguousarray(w[name].transpose(0, 2, 1))
    loop = {  # in pieces, as np.block would join them
        "W_hcat": [[W_enc0[F:], *W_h]],  # (H, F + G): h_{t-1}'s two readers [W_enc0h | W_h], one product
        "W_head": [[W_mu, W_sig]],  # (F, 2Z): the encoder's two heads [mu | sigma]
        "W_z0": [[params["phi_z.l0.W"]]], "W_iz": [[W[F:] for W in W_i]],  # (F, G): phi_z's rows of W_i
        # their transposes, for backward (h_{t-1}'s two readers apart: their gradients are added in the loop)
        "W_enc0hT": [[W_enc0[F:].T]], "W_hT": [[W.T] for W in W_h], "W_headT": [[W_mu.T], [W_sig.T]],
        "W_z0T": [[params["phi_z.l0.W"].T]], "W_izT": [[W[F:].T] for W in W_i],
    }
    return w, loop


def _operands(loop, names, B, n_chunks):
    """The loop's weights in the form ``dot_blocks`` (matmul.py) multiplies one chunk's rows by: tiles. The
    tiles are rewritten at every call into the same arrays, on 2 MiB pages (memory.py: the loop streams them in
    at every time step; measured: docs/performance.md, "Memory")."""
    rows = -(-B // n_chunks)
    return {name: chain_operand(loop[name], rows, partial(_BLOCKS.empty, name)) for name in names}


_BLOCKS = Workspace()  # the loop's tiles of weights, by name: each used only within one chain_forward/backward


# Below this many multiply-adds per time step (B * H * (F + G), the product with h_{t-1}) the chain runs as one
# chunk, on one thread. Each chunk runs the whole loop over time on its own rows, so what a second thread gains
# is set by the products of one step, which splitting the batch makes smaller; below this it gains little, and
# the parallel entry points take seconds to compile, which a small model (a newcomer's first `--tiny` run)
# should not pay (measured: docs/performance.md, "The sequential chain in compiled loops").
PARALLEL_MIN_WORK = 500_000


@contextmanager
def _threads(n):
    """Run a parallel kernel on at most ``n`` threads."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, before))
    try:
        yield
    finally:
        numba.set_num_threads(before)


# --- one time step, forward: the readable engine's vrnn_step_forward, its sequential part ---------------
# Each function works on step t of the rows r0:r1 of the batch (one chunk); ``work`` holds the chunk's scratch.
# Each first takes the arrays it uses out of the records, in one statement, and then reads only those: a record
# passed in is a copy, with a reference count taken on every one of its arrays, and a copy still alive across
# the function's loops keeps those counts (taken and dropped at every step) where Numba cannot remove them
# (measured: docs/performance.md, "The sequential chain in compiled loops").

@loop_step
def state_products_step_forward(t, r0, r1, w, s, work):
    """[a_enc0 | a_h] = h_{t-1} @ [W_enc0h | W_h]: h_{t-1}'s two readers in the chain, encoder layer 0 (eq. 8)
    and the cell (eq. 6), in one product. Their biases and phi_x's side are added by each reader."""
    h, W_hcat, ah_cat = s.h, w.W_hcat, work.ah_cat
    dot_blocks(h[t, r0:r1], W_hcat, ah_cat)


@loop_step
def encoder_step_forward(t, r0, r1, x, w, s, work):
    """eq. (8): the encoder's ReLU layers on [phi_x(x_t), h_{t-1}], then both heads, [a_mu | a_sig] in one
    product: writes mu_z and a_sig + b_sigma (reparam_step_forward makes sigma_z from it)."""
    ax, b_x, enc_W, enc_b, W_head, b_head, enc_act, q_mu, ah_cat, a_f, a_head, a_sig = (
        x.ax, w.b_x, w.enc_W, w.enc_b, w.W_head, w.b_head, s.enc_act, s.q_mu, work.ah_cat, work.a_f, work.a_head,
        work.a_sig)
    L, F, Z = enc_act.shape[0], enc_act.shape[3], q_mu.shape[2]
    zero = ax.dtype.type(0.0)
    b_enc0, b_mu, b_sig = b_x[:F], b_head[:Z], b_head[Z:]
    for i in range(r1 - r0):  # layer 0: ReLU(phi_x side + h side + bias)
        ax_enc, ah_enc, e0 = ax[t, r0 + i, :F], ah_cat[i, :F], enc_act[0, t, r0 + i]
        for j in range(F):
            v = (ax_enc[j] + b_enc0[j]) + ah_enc[j]
            e0[j] = v if v > zero else zero
    for l in range(1, L):
        np.dot(enc_act[l - 1, t, r0:r1], enc_W[l - 1], a_f)
        relu_layer(a_f, enc_b[l - 1], enc_act[l, t, r0:r1])
    dot_blocks(enc_act[L - 1, t, r0:r1], W_head, a_head)
    for i in range(r1 - r0):  # (row views, one per stream: loops over them vectorise)
        a_mu, a_sg, mu, pre = a_head[i, :Z], a_head[i, Z:], q_mu[t, r0 + i], a_sig[i * Z:(i + 1) * Z]
        for k in range(Z):
            mu[k] = a_mu[k] + b_mu[k]
            pre[k] = a_sg[k] + b_sig[k]


@loop_step
def reparam_step_forward(t, r0, r1, w, s, work):
    """sigma_z = softplus(a_sig) + sigma_min (keeping its slope, a sigmoid, for backward), then the
    reparameterisation z_t = mu_z + sigma_z * eps_t. Each a pass over the step's (r1 - r0) * Z entries at once,
    which sit side by side in the (T, B, Z) arrays (``work`` holds flat views of them): a row's Z values are too
    few to vectorise."""
    B, Z = s.q_mu.shape[1], s.q_mu.shape[2]
    sigma_min, a_sig, mu, sigma, slope, z, eps = (w.sigma_min, work.a_sig, work.q_mu_flat, work.q_sigma_flat,
                                                  work.slope_flat, work.z_flat, work.eps_flat)
    f0, f1 = (t * B + r0) * Z, (t * B + r1) * Z
    mu, sigma, slope, z, eps = mu[f0:f1], sigma[f0:f1], slope[f0:f1], z[f0:f1], eps[f0:f1]
    softplus_kernel(a_sig, sigma_min, sigma, slope)
    for k in range(f1 - f0):
        z[k] = mu[k] + sigma[k] * eps[k]


@loop_step
def phi_z_step_forward(t, r0, r1, w, s, work):
    """phi_z(z_t): ReLU layers, the first in tiles (dot_blocks), the rest plain products."""
    z, W_z0, b_z0, z_W, z_b, pz_act, a_f = s.z, w.W_z0, w.b_z0, w.z_W, w.z_b, s.pz_act, work.a_f
    dot_blocks(z[t, r0:r1], W_z0, a_f)
    relu_layer(a_f, b_z0, pz_act[0, t, r0:r1])
    for l in range(1, pz_act.shape[0]):
        np.dot(pz_act[l - 1, t, r0:r1], z_W[l - 1], a_f)
        relu_layer(a_f, z_b[l - 1], pz_act[l, t, r0:r1])


@loop_step
def gru_cell_step_forward(t, r0, r1, x, w, s, work):
    """eq. (6) with the GRU: the pre-activations a_i, a_h (cell_pre_activations), then h' from the gates, written
    to h[t + 1] (masked_state_step_forward may put h_{t-1} back on padded rows)."""
    ax, b_x, W_iz, b_h, pz_act, a_h, h, gates, ah_cat, a_i = (x.ax, w.b_x, w.W_iz, w.b_h, s.pz_act, s.a_h, s.h,
                                                              s.gates, work.ah_cat, work.a_i)
    cell_pre_activations(t, r0, r1, ax, b_x, W_iz, b_h, pz_act, a_h, ah_cat, a_i)
    gru_gates_step(a_i, a_h[t, r0:r1], h[t, r0:r1], gates[t, r0:r1], h[t + 1, r0:r1])


@loop_step
def lstm_cell_step_forward(t, r0, r1, x, w, s, work):
    """eq. (6) with the LSTM: the pre-activations, then (h', c') from a_i + a_h and c_{t-1}, written to h[t + 1],
    c[t + 1]."""
    ax, b_x, W_iz, b_h, pz_act, a_h, h, c, gates, tanh_c, ah_cat, a_i = (
        x.ax, w.b_x, w.W_iz, w.b_h, s.pz_act, s.a_h, s.h, s.c, s.gates, s.tanh_c, work.ah_cat, work.a_i)
    cell_pre_activations(t, r0, r1, ax, b_x, W_iz, b_h, pz_act, a_h, ah_cat, a_i)
    lstm_gates_step(a_i, a_h[t, r0:r1], c[t, r0:r1], gates[t, r0:r1], tanh_c[t, r0:r1], c[t + 1, r0:r1],
                    h[t + 1, r0:r1])


@loop_step
def cell_pre_activations(t, r0, r1, ax, b_x, W_iz, b_h, pz_act, a_h, ah_cat, a_i):
    """The cell's pre-activations, eq. (6): a_i = [phi_x(x_t), phi_z(z_t)] @ W_i + b_i (phi_x's side was one
    product before the loop) and a_h = h_{t-1} @ W_h + b_h (its product made by state_products_step_forward)."""
    L, F, G = pz_act.shape[0], pz_act.shape[3], a_h.shape[2]
    dot_blocks(pz_act[L - 1, t, r0:r1], W_iz, a_i)
    b_i = b_x[F:]
    for i in range(r1 - r0):
        ai, ax_cell, ah, ah_part = a_i[i], ax[t, r0 + i, F:], a_h[t, r0 + i], ah_cat[i, F:]
        for j in range(G):
            ai[j] += ax_cell[j] + b_i[j]
            ah[j] = ah_part[j] + b_h[j]


@loop_step
def masked_state_step_forward(t, r0, r1, x, s):
    """Padded steps (mask 0) keep the state before the step: h_t = h_{t-1} + m (h' - h_{t-1}), and c the same.
    Most steps have no padding and skip the pass."""
    mask, h, c = x.mask, s.h, s.c
    m = mask[t, r0:r1]
    if any_padded(m):
        masked_update(m, h[t + 1, r0:r1], h[t, r0:r1], h[t + 1, r0:r1])
        masked_update(m, c[t + 1, r0:r1], c[t, r0:r1], c[t + 1, r0:r1])


# --- one time step, backward: vrnn_step_backward's sequential part, the same steps in the mirror order ----

@loop_step
def masked_state_step_backward(t, r0, r1, x, work):
    """d h' = m dh and d h_{t-1} += (1 - m) dh (kept in dh_keep), and the same for c. (On a step without
    padding, where forward skipped its masked update, this gives dh_new = dh and dh_keep = 0 exactly.)"""
    mask, dh, dh_new, dh_keep, dc, dc_new, dc_keep = (x.mask, work.dh, work.dh_new, work.dh_keep, work.dc,
                                                      work.dc_new, work.dc_keep)
    m = mask[t, r0:r1]
    masked_update_backward(m, dh, dh_new, dh_keep)
    masked_update_backward(m, dc, dc_new, dc_keep)


@loop_step
def gru_cell_step_backward(t, r0, r1, w, s, d, work):
    """Backward of gru_cell_step_forward: d a_i, d a_h, the direct path u * dh' to h_{t-1} (dh_gates), then
    d phi_z(z_t) through the cell's input side, dp = d a_i @ W_iz.T. (d phi_x(x_t) and the weights' gradients
    are products over all steps after the loop; d h_{t-1} through a_h is state_products_step_backward's.)"""
    W_izT, a_h, h, gates, da_i, da_h, dh_new, dh_gates, dp = (w.W_izT, s.a_h, s.h, s.gates, d.da_i, d.da_h,
                                                              work.dh_new, work.dh_gates, work.dp)
    gru_gates_step_backward(dh_new, a_h[t, r0:r1], h[t, r0:r1], gates[t, r0:r1], da_i[t, r0:r1], da_h[t, r0:r1],
                            dh_gates)
    dot_blocks(da_i[t, r0:r1], W_izT, dp)


@loop_step
def lstm_cell_step_backward(t, r0, r1, w, s, d, work):
    """Backward of lstm_cell_step_forward: d (a_i + a_h), d c_{t-1} through the gates (dc_gates), then
    d phi_z(z_t), dp = d a_i @ W_iz.T. (dh_gates stays zero: the LSTM's h_{t-1} reaches h' only through a_h.)"""
    W_izT, c, gates, tanh_c, da_i, da_h, dh_new, dc_new, dc_gates, dp = (
        w.W_izT, s.c, s.gates, s.tanh_c, d.da_i, d.da_h, work.dh_new, work.dc_new, work.dc_gates, work.dp)
    lstm_gates_step_backward(dh_new, dc_new, c[t, r0:r1], gates[t, r0:r1], tanh_c[t, r0:r1], da_h[t, r0:r1],
                             dc_gates)
    dot_blocks(da_i[t, r0:r1], W_izT, dp)


@loop_step
def phi_z_step_backward(t, r0, r1, w, s, up, d, work):
    """phi_z(z_t) fed the cell and the decoder: dp += the decoder's share, then down through the ReLU layers
    to d z_t."""
    z_WT, W_z0T, pz_act, dpz, d_pz, dp, d_below, dz = (w.z_WT, w.W_z0T, s.pz_act, up.dpz, d.d_pz, work.dp,
                                                        work.d_below, work.dz)
    for i in range(r1 - r0):
        dp_row, dec = dp[i], dpz[t, r0 + i]
        for j in range(dp_row.shape[0]):
            dp_row[j] += dec[j]
    for l in range(pz_act.shape[0] - 1, 0, -1):
        relu_backward(dp, pz_act[l, t, r0:r1], d_pz[l, t, r0:r1])
        np.dot(d_pz[l, t, r0:r1], z_WT[l - 1], d_below)
        copy_rows(d_below, dp)
    relu_backward(dp, pz_act[0, t, r0:r1], d_pz[0, t, r0:r1])
    dot_blocks(d_pz[0, t, r0:r1], W_z0T, dz)


@loop_step
def reparam_step_backward(t, r0, r1, x, s, up, d, work):
    """z_t = mu_z + sigma_z * eps_t and sigma_z = softplus(a_sig) + sigma_min in reverse, with the KL's share of
    d mu_z and d sigma_z added: writes d [a_mu | a_sig]."""
    eps, slope, dq_mu, dq_sigma, d_head, dz = x.eps, s.slope, up.dq_mu, up.dq_sigma, d.d_head, work.dz
    Z = slope.shape[2]
    for i in range(r1 - r0):
        b = r0 + i
        dz_b, dq_mu_b, dq_sigma_b, eps_b, slope_b, d_head_b = (dz[i], dq_mu[t, b], dq_sigma[t, b], eps[t, b],
                                                               slope[t, b], d_head[t, b])
        for k in range(Z):
            d_head_b[k] = dz_b[k] + dq_mu_b[k]  # d a_mu = d mu_z
            d_head_b[Z + k] = (dz_b[k] * eps_b[k] + dq_sigma_b[k]) * slope_b[k]  # d a_sig = d sigma_z * softplus'


@loop_step
def encoder_step_backward(t, r0, r1, w, s, d, work):
    """Backward of encoder_step_forward: from d [a_mu | a_sig] through both heads (one product) and down
    through the ReLU layers to d of layer 0's pre-activation."""
    W_headT, enc_WT, enc_act, d_head, d_enc, de, d_below = (w.W_headT, w.enc_WT, s.enc_act, d.d_head, d.d_enc,
                                                            work.de, work.d_below)
    dot_blocks(d_head[t, r0:r1], W_headT, de)
    for l in range(enc_act.shape[0] - 1, 0, -1):
        relu_backward(de, enc_act[l, t, r0:r1], d_enc[l, t, r0:r1])
        np.dot(d_enc[l, t, r0:r1], enc_WT[l - 1], d_below)
        copy_rows(d_below, de)
    relu_backward(de, enc_act[0, t, r0:r1], d_enc[0, t, r0:r1])


@loop_step
def state_products_step_backward(t, r0, r1, w, up, d, work):
    """d h_{t-1}, the sum over every path from h_{t-1} to the loss: its two readers in the chain (encoder layer
    0 and the cell's a_h, one product each), the mask's carry on padded rows (dh_keep), the GRU's direct path
    (dh_gates), and, from outside the chain, the prior and the decoder (up.dh). The same for c_{t-1}: the
    mask's carry and the LSTM's gates."""
    W_enc0hT, W_hT, dh_ext, d_enc, da_h = w.W_enc0hT, w.W_hT, up.dh, d.d_enc, d.da_h
    dh, dh_keep, dh_enc, dh_cell, dh_gates, dc, dc_keep, dc_gates = (work.dh, work.dh_keep, work.dh_enc,
                                                                     work.dh_cell, work.dh_gates, work.dc,
                                                                     work.dc_keep, work.dc_gates)
    dot_blocks(d_enc[0, t, r0:r1], W_enc0hT, dh_enc)
    dot_blocks(da_h[t, r0:r1], W_hT, dh_cell)
    for i in range(r1 - r0):
        out, keep, enc, cell, gates, ext = dh[i], dh_keep[i], dh_enc[i], dh_cell[i], dh_gates[i], dh_ext[t, r0 + i]
        for j in range(out.shape[0]):
            out[j] = keep[j] + enc[j] + cell[j] + ext[j] + gates[j]
    for i in range(r1 - r0):
        out, keep, gates = dc[i], dc_keep[i], dc_gates[i]
        for j in range(out.shape[0]):
            out[j] = keep[j] + gates[j]


# --- the loops over time, one pair per cell ---------------------------------------------------------------

@kernel
def gru_chain_forward(r0, r1, x, w, s):
    """The chain forward with the GRU, over the rows r0:r1 of the batch, t = 0, 1, ..., T - 1."""
    work = forward_work(r1 - r0, x, s)
    start_state(r0, r1, x, s)
    for t in range(x.mask.shape[0]):
        state_products_step_forward(t, r0, r1, w, s, work)
        encoder_step_forward(t, r0, r1, x, w, s, work)
        reparam_step_forward(t, r0, r1, w, s, work)
        phi_z_step_forward(t, r0, r1, w, s, work)
        gru_cell_step_forward(t, r0, r1, x, w, s, work)
        masked_state_step_forward(t, r0, r1, x, s)


@kernel
def gru_chain_backward(r0, r1, x, w, s, up, d):
    """Backprop through time for gru_chain_forward over the rows r0:r1, t = T - 1, ..., 0; writes ``d``."""
    work = backward_work(r1 - r0, s)
    for t in range(x.mask.shape[0] - 1, -1, -1):
        masked_state_step_backward(t, r0, r1, x, work)
        gru_cell_step_backward(t, r0, r1, w, s, d, work)
        phi_z_step_backward(t, r0, r1, w, s, up, d, work)
        reparam_step_backward(t, r0, r1, x, s, up, d, work)
        encoder_step_backward(t, r0, r1, w, s, d, work)
        state_products_step_backward(t, r0, r1, w, up, d, work)
    copy_rows(work.dh, d.dh0[r0:r1])
    copy_rows(work.dc, d.dc0[r0:r1])


@kernel
def lstm_chain_forward(r0, r1, x, w, s):
    """gru_chain_forward with the LSTM's cell step."""
    work = forward_work(r1 - r0, x, s)
    start_state(r0, r1, x, s)
    for t in range(x.mask.shape[0]):
        state_products_step_forward(t, r0, r1, w, s, work)
        encoder_step_forward(t, r0, r1, x, w, s, work)
        reparam_step_forward(t, r0, r1, w, s, work)
        phi_z_step_forward(t, r0, r1, w, s, work)
        lstm_cell_step_forward(t, r0, r1, x, w, s, work)
        masked_state_step_forward(t, r0, r1, x, s)


@kernel
def lstm_chain_backward(r0, r1, x, w, s, up, d):
    """gru_chain_backward with the LSTM's cell step."""
    work = backward_work(r1 - r0, s)
    for t in range(x.mask.shape[0] - 1, -1, -1):
        masked_state_step_backward(t, r0, r1, x, work)
        lstm_cell_step_backward(t, r0, r1, w, s, d, work)
        phi_z_step_backward(t, r0, r1, w, s, up, d, work)
        reparam_step_backward(t, r0, r1, x, s, up, d, work)
        encoder_step_backward(t, r0, r1, w, s, d, work)
        state_products_step_backward(t, r0, r1, w, up, d, work)
    copy_rows(work.dh, d.dh0[r0:r1])
    copy_rows(work.dc, d.dc0[r0:r1])


# The parallel entry points: the batch in ``n_chunks`` blocks of rows, one loop over time each, in parallel.
# (Separate functions, not the serial ones compiled with other options: Numba caches a function's machine code
# under its name, and the serial ones compile in much less time; a small model never needs these.)

@njit(parallel=True, **KERNEL_OPTIONS)
def gru_chain_forward_parallel(n_chunks, x, w, s):
    B = x.mask.shape[1]
    for chunk in prange(n_chunks):
        gru_chain_forward(chunk * B // n_chunks, (chunk + 1) * B // n_chunks, x, w, s)


@njit(parallel=True, **KERNEL_OPTIONS)
def gru_chain_backward_parallel(n_chunks, x, w, s, up, d):
    B = x.mask.shape[1]
    for chunk in prange(n_chunks):
        gru_chain_backward(chunk * B // n_chunks, (chunk + 1) * B // n_chunks, x, w, s, up, d)


@njit(parallel=True, **KERNEL_OPTIONS)
def lstm_chain_forward_parallel(n_chunks, x, w, s):
    B = x.mask.shape[1]
    for chunk in prange(n_chunks):
        lstm_chain_forward(chunk * B // n_chunks, (chunk + 1) * B // n_chunks, x, w, s)


@njit(parallel=True, **KERNEL_OPTIONS)
def lstm_chain_backward_parallel(n_chunks, x, w, s, up, d):
    B = x.mask.shape[1]
    for chunk in prange(n_chunks):
        lstm_chain_backward(chunk * B // n_chunks, (chunk + 1) * B // n_chunks, x, w, s, up, d)


FORWARD = {"gru": (gru_chain_forward, gru_chain_forward_parallel),
           "lstm": (lstm_chain_forward, lstm_chain_forward_parallel)}
BACKWARD = {"gru": (gru_chain_backward, gru_chain_backward_parallel),
            "lstm": (lstm_chain_backward, lstm_chain_backward_parallel)}


# --- helpers of the loops -------------------------------------------------------------------------------

@loop_step
def forward_work(nb, x, s):
    """The forward loop's scratch arrays for a block of nb rows, and the flat views reparam_step_forward reads."""
    F, Z, G, dtype = s.enc_act.shape[3], s.q_mu.shape[2], s.a_h.shape[2], x.ax.dtype
    flat = lambda a: a.reshape(a.size)
    return ForwardWork(np.empty((nb, F + G), dtype), np.empty((nb, F), dtype), np.empty((nb, 2 * Z), dtype),
                       np.empty(nb * Z, dtype), np.empty((nb, G), dtype), flat(s.q_mu), flat(s.q_sigma),
                       flat(s.slope), flat(s.z), flat(x.eps))


@loop_step
def backward_work(nb, s):
    """The backward loop's arrays for a block of nb rows; dh, dc (d loss / d final state) and dh_gates start at
    zero."""
    H, Hc, F, Z, dtype = s.h.shape[2], s.c.shape[2], s.enc_act.shape[3], s.q_mu.shape[2], s.h.dtype
    return BackwardWork(np.zeros((nb, H), dtype), np.zeros((nb, Hc), dtype), np.empty((nb, H), dtype),
                        np.empty((nb, Hc), dtype), np.empty((nb, H), dtype), np.empty((nb, Hc), dtype),
                        np.zeros((nb, H), dtype), np.empty((nb, Hc), dtype), np.empty((nb, F), dtype),
                        np.empty((nb, F), dtype), np.empty((nb, F), dtype), np.empty((nb, Z), dtype),
                        np.empty((nb, H), dtype), np.empty((nb, H), dtype))


@loop_step
def start_state(r0, r1, x, s):
    """h[0] = h_0 (and c[0] = c_0) for the rows r0:r1: each step reads h[t] and writes h[t + 1]."""
    copy_rows(x.h0[r0:r1], s.h[0, r0:r1])
    copy_rows(x.c0[r0:r1], s.c[0, r0:r1])


@kernel
def any_padded(m):
    """True if any row of this step is padding (m != 1). Most steps have none: they skip the masked update."""
    for b in range(m.shape[0]):
        if m[b] != 1:
            return True
    return False


@kernel
def relu_layer(a, b, out):
    """out = max(a + b, 0) row by row (a is the product already computed)."""
    zero = out.dtype.type(0.0)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            v = a[i, j] + b[j]
            out[i, j] = v if v > zero else zero


@kernel
def relu_backward(dy, act, out):
    """out = dy where the layer's output was positive, else 0."""
    zero = out.dtype.type(0.0)
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            out[i, j] = dy[i, j] if act[i, j] > zero else zero
