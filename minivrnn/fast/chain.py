"""The VRNN's sequential chain, compiled: encoder (eq. 8) -> z_t -> phi_z -> recurrence (eq. 6).

Only this chain needs a loop over time: z_t depends on h_{t-1}, and h_t on z_t. Everything else (phi_x of
every frame, the prior, the decoder, the KL and the log-likelihood) runs over all T*B rows at once in
engine.py. So the loop here does just the products that must be sequential, per time step:

    [a_enc0 | a_h] = h_{t-1} @ [W_enc0h | W_h]        one product for both readers of h_{t-1}
    e = ReLU layers of the encoder                    eq. (8)
    [a_mu | a_sig] = e @ [W_mu | W_sig]               the two heads of the encoder: one product
    mu_z, sigma_z = a_mu + b_mu, softplus(a_sig + b_sig) + sigma_min
    z_t = mu_z + sigma_z * eps_t                      the reparameterisation
    p = ReLU layers of phi_z(z_t)
    a_i = (phi_x(x_t) @ W_ipx, computed before the loop) + b_i + p @ W_ipz
    h_t = GRU or LSTM gates from a_i, a_h; padded steps keep h_{t-1}

and stores every pre-activation's input so that, after the backward loop, each weight gradient is one
matrix product over all T*B rows (no accumulation inside the loop at all). Sequences are independent, so
the batch is split into chunks run in parallel (``prange``); each chunk writes only its own rows. The
loop's products have only B rows each; they multiply by their weight in tiles small enough for OpenBLAS's
unpacked small-matrix path and the core's first-level cache (``dot_blocks``, matmul.py), and the
element-wise passes are written over row views so that they vectorise (vecmath.py).
"""
import types
from contextlib import contextmanager
from functools import partial

import numba
import numpy as np
from numba import njit, prange

from . import gru, lstm
from .activations import softplus_kernel
from .gru import gru_gates_step, gru_gates_step_backward
from .jit import KERNEL_OPTIONS, kernel
from .lstm import lstm_gates_step, lstm_gates_step_backward
from .matmul import chain_operand, dot_blocks, matmul, matmul_tn, sum_rows
from .memory import Workspace
from .recurrent import copy_rows, masked_update, masked_update_backward
from .threads import n_chunks


def chain_forward(params, config, px, mask, eps, state0):
    """Run the chain over time. px (T, B, F) = phi_x(x), mask (T, B), eps (T, B, Z), state0 = (h0,) or
    (h0, c0). Returns (out, cache) with out = {h_prevs (T, B, H), pz (T, B, F), q_mu, q_sigma (T, B, Z),
    final_state}."""
    T, B, F = px.shape
    H, Z, L, dtype = config.h_dim, config.z_dim, config.n_layers, px.dtype
    is_lstm = config.cell == "lstm"
    w, loop = _weights(params, config, dtype)
    G = w["b_h"].shape[0]  # 3H (GRU) or 4H (LSTM)
    # phi_x's side of encoder layer 0 and of the recurrence, [ax_enc | ax_cell]: one product for both readers
    ax = matmul(px.reshape(T * B, F), w["W_xcat"])  # (their biases are added in the loop, b_x: one pass fewer)
    Hc = H if is_lstm else 0  # the cell state c exists only for the LSTM (zero-width arrays otherwise)
    h0 = np.ascontiguousarray(state0[0])
    c0 = np.ascontiguousarray(state0[1]) if is_lstm else np.zeros((B, 0), dtype)
    s = {  # everything the backward pass needs, each (T, B, ...) or (L, T, B, F)
        "h_prev": np.empty((T, B, H), dtype), "c_prev": np.empty((T, B, Hc), dtype),
        "enc_act": np.empty((L, T, B, F), dtype), "q_mu": np.empty((T, B, Z), dtype),
        "q_sigma": np.empty((T, B, Z), dtype), "slope": np.empty((T, B, Z), dtype),
        "z": np.empty((T, B, Z), dtype), "pz_act": np.empty((L, T, B, F), dtype),
        "a_h": np.empty((T, B, G), dtype), "gates": np.empty((T, B, G), dtype),
        "tanh_c": np.empty((T, B, Hc), dtype),
    }
    h_out, c_out = np.empty((B, H), dtype), np.empty((B, Hc), dtype)
    chunks = n_chunks(B, B * H * (F + G), PARALLEL_MIN_WORK)
    b = _operands(loop, ("W_hcat", "W_head", "W_z0", "W_ipz"), B, chunks)
    with _threads(chunks):
        FORWARD[config.cell, chunks > 1](
            chunks, ax.reshape(T, B, F + G), np.ascontiguousarray(eps),
            np.ascontiguousarray(mask), h0, c0,
            w["b_xcat"], b["W_hcat"], w["b_h"], w["enc_W"], w["enc_b"], b["W_head"], w["b_head"],
            b["W_z0"], w["b_z0"], w["z_W"], w["z_b"], b["W_ipz"], dtype.type(config.sigma_min),
            s["h_prev"], s["c_prev"], s["enc_act"], s["q_mu"], s["q_sigma"], s["slope"], s["z"], s["pz_act"],
            s["a_h"], s["gates"], s["tanh_c"], h_out, c_out)
    out = {"h_prevs": s["h_prev"], "pz": s["pz_act"][L - 1], "q_mu": s["q_mu"], "q_sigma": s["q_sigma"],
           "final_state": (h_out, c_out) if is_lstm else (h_out,)}
    return out, (config, px, mask, eps, w, loop, s)


def chain_backward(cache, dpz, dh_prevs, dq_mu, dq_sigma):
    """Backprop through time along the chain. Inputs are the gradients reaching the chain's outputs from
    outside it (the decoder's d phi_z(z_t), the prior's and decoder's d h_{t-1}, the KL's d mu_z, d sigma_z).
    Returns (dpx (T, B, F), grads keyed by full parameter names)."""
    config, px, mask, eps, w, loop, s = cache
    (T, B, F), L, dtype = px.shape, config.n_layers, px.dtype
    is_lstm = config.cell == "lstm"
    G = w["b_h"].shape[0]
    d = {"enc": np.empty((L, T, B, F), dtype), "head": np.empty((T, B, 2 * config.z_dim), dtype),
         "pz": np.empty((L, T, B, F), dtype), "a_h": np.empty((T, B, G), dtype)}
    d["a_i"] = d["a_h"] if is_lstm else np.empty((T, B, G), dtype)  # the LSTM sums a_i + a_h: one gradient
    dh0, dc0 = np.empty((B, config.h_dim), dtype), np.empty((B, s["c_prev"].shape[2]), dtype)
    chunks = n_chunks(B, B * config.h_dim * (F + G), PARALLEL_MIN_WORK)
    b = _operands(loop, ("W_enc0hT", "W_hT", "W_headT", "W_z0T", "W_ipzT"), B, chunks)
    with _threads(chunks):
        BACKWARD[config.cell, chunks > 1](
            chunks, np.ascontiguousarray(dpz), np.ascontiguousarray(dh_prevs),
            np.ascontiguousarray(dq_mu), np.ascontiguousarray(dq_sigma), np.ascontiguousarray(mask),
            np.ascontiguousarray(eps), s["h_prev"], s["c_prev"], s["enc_act"], s["slope"], s["pz_act"], s["a_h"],
            s["gates"], s["tanh_c"], b["W_enc0hT"], b["W_hT"], w["enc_WT"], b["W_headT"], b["W_z0T"],
            w["z_WT"], b["W_ipzT"], d["enc"], d["head"], d["pz"], d["a_i"], d["a_h"], dh0, dc0)
    return _input_and_weight_grads(config, px, w, s, d)


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

    grads["enc.l0.W"] = side_by_side_tn([px, s["h_prev"]], d["enc"][0])  # enc saw [phi_x(x_t), h_{t-1}]
    grads["enc.l0.b"] = sum_rows(rows(d["enc"][0]))
    for l in range(1, L):
        linear(f"enc.l{l}", s["enc_act"][l - 1], d["enc"][l])
    Z = config.z_dim  # the encoder's two heads sat side by side, [mu | sigma]: one product, then split
    head_W, head_b = matmul_tn(rows(s["enc_act"][L - 1]), rows(d["head"])), sum_rows(rows(d["head"]))
    grads["enc.mu.W"], grads["enc.sigma.W"] = (np.ascontiguousarray(head_W[:, :Z]),
                                               np.ascontiguousarray(head_W[:, Z:]))
    grads["enc.mu.b"], grads["enc.sigma.b"] = head_b[:Z], head_b[Z:]
    linear("phi_z.l0", s["z"], d["pz"][0])
    for l in range(1, L):
        linear(f"phi_z.l{l}", s["pz_act"][l - 1], d["pz"][l])
    da_i, da_h = rows(d["a_i"]), rows(d["a_h"])
    module = lstm if config.cell == "lstm" else gru
    W_i = side_by_side_tn([px, s["pz_act"][L - 1]], da_i)  # the cell saw [phi_x(x_t), phi_z(z_t)]
    cell = module.unpack(W_i, matmul_tn(rows(s["h_prev"]), da_h), sum_rows(da_i), sum_rows(da_h))
    grads.update({f"{config.cell}.{k}": v for k, v in cell.items()})
    dpx = matmul(rows(d["enc"][0]), w["W_enc0x"].T) + matmul(da_i, w["W_ipx"].T)  # (N, F): phi_x fed both
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
        "W_xcat": W_xcat, "W_enc0x": W_xcat[:, :F], "W_ipx": W_xcat[:, F:],
        "b_xcat": np.concatenate([params["enc.l0.b"], b_i]), "b_h": b_h,
        "enc_W": stack("enc"), "enc_b": stack_b("enc"), "z_W": stack("phi_z"), "z_b": stack_b("phi_z"),
        "b_head": np.concatenate([params["enc.mu.b"], params["enc.sigma.b"]]),
        "b_z0": np.ascontiguousarray(params["phi_z.l0.b"]),  # (the rest are new arrays, contiguous)
    }
    for name in ("enc_W", "z_W"):
        w[name + "T"] = np.ascontiguousarray(w[name].transpose(0, 2, 1))
    loop = {  # in pieces, as np.block would join them
        "W_hcat": [[W_enc0[F:], *W_h]],  # (H, F + G): h_{t-1}'s two readers [W_enc0h | W_h], one product
        "W_head": [[W_mu, W_sig]],  # (F, 2Z): the encoder's two heads [mu | sigma]
        "W_z0": [[params["phi_z.l0.W"]]], "W_ipz": [[W[F:] for W in W_i]],  # (F, G): phi_z's rows of W_i
        # their transposes, for backward (h_{t-1}'s two readers apart: their gradients are added in the loop)
        "W_enc0hT": [[W_enc0[F:].T]], "W_hT": [[W.T] for W in W_h], "W_headT": [[W_mu.T], [W_sig.T]],
        "W_z0T": [[params["phi_z.l0.W"].T]], "W_ipzT": [[W[F:].T] for W in W_i],
    }
    return w, loop


def _operands(loop, names, B, n_chunks):
    """The loop's weights in the form ``dot_blocks`` (matmul.py) multiplies one chunk's rows by: blocks of
    columns, multiplied a tile at a time. The blocks are rewritten at every call into the same arrays, on 2 MiB
    pages (memory.py: the loop streams them in at every time step, and on 4 KiB pages that costs ~8 % of it)."""
    rows = -(-B // n_chunks)
    return {name: chain_operand(loop[name], rows, partial(_BLOCKS.empty, name)) for name in names}


_BLOCKS = Workspace()  # the loop's blocks of weights, by name: each used only within one chain_forward/backward


# Below this many multiply-adds per time step (B * H * (F + G), the product with h_{t-1}) a second thread
# costs more in synchronisation than it saves: the chain then runs as one chunk.
PARALLEL_MIN_WORK = 500_000


@contextmanager
def _threads(n):
    """Run a parallel kernel on at most ``n`` threads (n = 1 runs the serial kernel: nothing to set)."""
    if n == 1:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, before))
    try:
        yield
    finally:
        numba.set_num_threads(before)




@kernel
def _any_padded(m):
    """True if any row of this step is padding (m != 1). Most steps have none: they skip the masked update."""
    for b in range(m.shape[0]):
        if m[b] != 1:
            return True
    return False


@kernel
def _relu_layer(a, b, out):
    """out = max(a + b, 0) row by row (a is the product already computed)."""
    zero = out.dtype.type(0.0)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            v = a[i, j] + b[j]
            out[i, j] = v if v > zero else zero


@kernel
def _relu_backward(dy, act, out):
    """out = dy where the layer's output was positive, else 0."""
    zero = out.dtype.type(0.0)
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            out[i, j] = dy[i, j] if act[i, j] > zero else zero


# The two loops read IS_LSTM: not a value of this module but a constant that each compiled copy of them gets in
# globals of its own (``_compiled``, at the end of the file).
IS_LSTM: bool


def _chain_forward_loop(n_chunks, ax, eps, mask, h0, c0, b_x, W_hcat, b_h, enc_W, enc_b, W_head, b_head, W_z0,
                        b_z0, z_W, z_b, W_ipz, sigma_min, h_prev, c_prev, enc_act, q_mu, q_sigma, slope, z, pz_act,
                        a_h, gates, tanh_c, h_out, c_out):
    T, B = ax.shape[0], ax.shape[1]
    L, F, Z, G = enc_act.shape[0], enc_act.shape[3], eps.shape[2], a_h.shape[2]
    zero = ax.dtype.type(0.0)
    b_mu, b_sig = b_head[:Z], b_head[Z:]
    # flat views of the (T, B, Z) arrays: one step's rows of a chunk are one run of them
    mu_flat, sigma_flat, slope_flat = q_mu.reshape(q_mu.size), q_sigma.reshape(q_sigma.size), slope.reshape(slope.size)
    z_flat, eps_flat = z.reshape(z.size), eps.reshape(eps.size)
    bx_enc, bx_cell = b_x[:F], b_x[F:]
    for chunk in prange(n_chunks):
        r0, r1 = chunk * B // n_chunks, (chunk + 1) * B // n_chunks
        nb = r1 - r0
        if T == 0:  # no step: the state passes through
            copy_rows(h0[r0:r1], h_out[r0:r1])
            copy_rows(c0[r0:r1], c_out[r0:r1])
        else:  # the stores double as the state: step t reads h_prev[t] and writes h_prev[t + 1]
            copy_rows(h0[r0:r1], h_prev[0, r0:r1])
            copy_rows(c0[r0:r1], c_prev[0, r0:r1])
        ah_cat = np.empty((nb, F + G), ax.dtype)
        a_f = np.empty((nb, F), ax.dtype)
        a_head = np.empty((nb, 2 * Z), ax.dtype)  # [a_mu | a_sig]
        a_sig = np.empty(nb * Z, ax.dtype)  # a_sig + b_sig of the chunk's rows, one run
        a_i = np.empty((nb, G), ax.dtype)
        for t in range(T):
            h, c = h_prev[t, r0:r1], c_prev[t, r0:r1]  # (nb, H), (nb, H or 0): the state before step t
            h_new = h_prev[t + 1, r0:r1] if t + 1 < T else h_out[r0:r1]
            c_new = c_prev[t + 1, r0:r1] if t + 1 < T else c_out[r0:r1]
            dot_blocks(h, W_hcat, ah_cat)  # [a_enc0 | a_h] = h_{t-1} @ [W_enc0h | W_h]
            for i in range(nb):  # encoder layer 0, eq. (8): ReLU(phi_x side + h side)
                ax_enc, ah_enc, e0 = ax[t, r0 + i, :F], ah_cat[i, :F], enc_act[0, t, r0 + i]
                for j in range(F):
                    v = (ax_enc[j] + bx_enc[j]) + ah_enc[j]
                    e0[j] = v if v > zero else zero
            for l in range(1, L):
                np.dot(enc_act[l - 1, t, r0:r1], enc_W[l - 1], a_f)
                _relu_layer(a_f, enc_b[l - 1], enc_act[l, t, r0:r1])
            dot_blocks(enc_act[L - 1, t, r0:r1], W_head, a_head)  # both heads of the encoder
            for i in range(nb):  # mu_z = a_mu + b_mu, and the sigma head's pre-activation a_sig + b_sig
                a_mu, a_sg, mu, pre = a_head[i, :Z], a_head[i, Z:], q_mu[t, r0 + i], a_sig[i * Z:(i + 1) * Z]
                for k in range(Z):  # (row views, one per stream: loops over them vectorise)
                    mu[k] = a_mu[k] + b_mu[k]
                    pre[k] = a_sg[k] + b_sig[k]
            # sigma_z = softplus(.) + sigma_min with its slope (a sigmoid) for backward, z_t = mu_z + sigma_z * eps_t:
            # each a pass over the step's nb * Z entries at once, which sit side by side in the (T, B, Z) arrays (a
            # row's Z = 8 are too few to vectorise: 2.9 us a step at 16 x 8 as rows, 0.4 us as one run)
            f0, f1 = (t * B + r0) * Z, (t * B + r1) * Z
            softplus_kernel(a_sig, sigma_min, sigma_flat[f0:f1], slope_flat[f0:f1])
            mu_run, sigma_run, z_run, eps_run = mu_flat[f0:f1], sigma_flat[f0:f1], z_flat[f0:f1], eps_flat[f0:f1]
            for k in range(f1 - f0):
                z_run[k] = mu_run[k] + sigma_run[k] * eps_run[k]
            dot_blocks(z[t, r0:r1], W_z0, a_f)  # phi_z(z_t)
            _relu_layer(a_f, b_z0, pz_act[0, t, r0:r1])
            for l in range(1, L):
                np.dot(pz_act[l - 1, t, r0:r1], z_W[l - 1], a_f)
                _relu_layer(a_f, z_b[l - 1], pz_act[l, t, r0:r1])
            dot_blocks(pz_act[L - 1, t, r0:r1], W_ipz, a_i)  # the recurrence's input side, eq. (6)
            for i in range(nb):
                ai, ax_cell, ah, ah_part = a_i[i], ax[t, r0 + i, F:], a_h[t, r0 + i], ah_cat[i, F:]
                for j in range(G):
                    ai[j] += ax_cell[j] + bx_cell[j]
                    ah[j] = ah_part[j] + b_h[j]
            if IS_LSTM:
                lstm_gates_step(a_i, a_h[t, r0:r1], c, gates[t, r0:r1], tanh_c[t, r0:r1], c_new, h_new)
            else:
                gru_gates_step(a_i, a_h[t, r0:r1], h, gates[t, r0:r1], h_new)
            if _any_padded(mask[t, r0:r1]):  # padded steps keep h_{t-1} (and c_{t-1})
                masked_update(mask[t, r0:r1], h_new, h, h_new)
                masked_update(mask[t, r0:r1], c_new, c, c_new)


def _chain_backward_loop(n_chunks, dpz_ext, dh_ext, dq_mu, dq_sigma, mask, eps, h_prev, c_prev, enc_act, slope,
                         pz_act, a_h, gates, tanh_c, W_enc0hT, W_hT, enc_WT, W_headT, W_z0T, z_WT, W_ipzT, d_enc,
                         d_head, d_pz, da_i, da_h, dh0, dc0):
    """_chain_forward_loop in reverse, newest step first; dh (and dc) carry d loss / d state."""
    T, B, F = dpz_ext.shape
    L, Z, H, Hc = d_enc.shape[0], eps.shape[2], h_prev.shape[2], c_prev.shape[2]
    for chunk in prange(n_chunks):
        r0, r1 = chunk * B // n_chunks, (chunk + 1) * B // n_chunks
        nb = r1 - r0
        dh, dc = np.zeros((nb, H), dpz_ext.dtype), np.zeros((nb, Hc), dpz_ext.dtype)
        dh_new, dh_keep, dh_gates = np.empty_like(dh), np.empty_like(dh), np.zeros_like(dh)
        dc_new, dc_keep, dc_gates = np.empty_like(dc), np.empty_like(dc), np.empty_like(dc)
        dp, dp_next = np.empty((nb, F), dpz_ext.dtype), np.empty((nb, F), dpz_ext.dtype)
        de, de_sig = np.empty((nb, F), dpz_ext.dtype), np.empty((nb, F), dpz_ext.dtype)
        dz = np.empty((nb, Z), dpz_ext.dtype)
        dh_enc, dh_cell = np.empty((nb, H), dpz_ext.dtype), np.empty((nb, H), dpz_ext.dtype)
        for t in range(T - 1, -1, -1):
            # (on a step without padding, where forward skipped its masked update, this gives dh_new = dh and
            # dh_keep = 0 exactly)
            masked_update_backward(mask[t, r0:r1], dh, dh_new, dh_keep)
            if IS_LSTM:
                masked_update_backward(mask[t, r0:r1], dc, dc_new, dc_keep)
                lstm_gates_step_backward(dh_new, dc_new, c_prev[t, r0:r1], gates[t, r0:r1],
                                          tanh_c[t, r0:r1], da_h[t, r0:r1], dc_gates)
            else:
                gru_gates_step_backward(dh_new, a_h[t, r0:r1], h_prev[t, r0:r1], gates[t, r0:r1],
                                         da_i[t, r0:r1], da_h[t, r0:r1], dh_gates)
            dot_blocks(da_i[t, r0:r1], W_ipzT, dp)  # phi_z(z_t) fed the recurrence ...
            dp += dpz_ext[t, r0:r1]  # ... and the decoder
            for l in range(L - 1, 0, -1):
                _relu_backward(dp, pz_act[l, t, r0:r1], d_pz[l, t, r0:r1])
                np.dot(d_pz[l, t, r0:r1], z_WT[l - 1], dp_next)
                copy_rows(dp_next, dp)
            _relu_backward(dp, pz_act[0, t, r0:r1], d_pz[0, t, r0:r1])
            dot_blocks(d_pz[0, t, r0:r1], W_z0T, dz)  # d z_t
            for i in range(nb):  # z = mu + sigma * eps; sigma = softplus(a) + sigma_min; plus the KL's share
                for k in range(Z):
                    d_head[t, r0 + i, k] = dz[i, k] + dq_mu[t, r0 + i, k]  # d a_mu
                    dsigma = dz[i, k] * eps[t, r0 + i, k] + dq_sigma[t, r0 + i, k]
                    d_head[t, r0 + i, Z + k] = dsigma * slope[t, r0 + i, k]  # d a_sig
            dot_blocks(d_head[t, r0:r1], W_headT, de)  # both heads read the encoder's last layer
            for l in range(L - 1, 0, -1):
                _relu_backward(de, enc_act[l, t, r0:r1], d_enc[l, t, r0:r1])
                np.dot(d_enc[l, t, r0:r1], enc_WT[l - 1], de_sig)
                copy_rows(de_sig, de)
            _relu_backward(de, enc_act[0, t, r0:r1], d_enc[0, t, r0:r1])
            # h_{t-1}'s two readers, encoder layer 0 and the recurrence: one product each
            dot_blocks(d_enc[0, t, r0:r1], W_enc0hT, dh_enc)
            dot_blocks(da_h[t, r0:r1], W_hT, dh_cell)
            for i in range(nb):
                for j in range(H):
                    dh[i, j] = dh_keep[i, j] + dh_enc[i, j] + dh_cell[i, j] + dh_ext[t, r0 + i, j]
                    if not IS_LSTM:
                        dh[i, j] += dh_gates[i, j]  # the GRU's direct path u * dh_new
            if IS_LSTM:
                for i in range(nb):
                    for j in range(Hc):
                        dc[i, j] = dc_keep[i, j] + dc_gates[i, j]
        copy_rows(dh, dh0[r0:r1])
        copy_rows(dc, dc0[r0:r1])


def _compiled(loop, cell, parallel):
    """A Numba dispatcher of ``loop`` for one cell: serial (compiles in a third of the time; runs whenever one chunk
    is enough, as for small models) or parallel (``prange`` over the chunks). Each is a copy of the function under
    its own name, so that they are cached side by side, with ``IS_LSTM`` a constant of its own globals: Numba
    drops the other cell's branches before compiling, so a GRU model never compiles the LSTM's gate steps (nor
    the reverse), ~0.8 s of a first run."""
    name = f"{loop.__name__}_{cell}_{'parallel' if parallel else 'serial'}"
    copy = types.FunctionType(loop.__code__, dict(loop.__globals__, IS_LSTM=cell == "lstm"), name)
    copy.__qualname__ = name
    return njit(parallel=parallel, **KERNEL_OPTIONS)(copy)


# Indexed by (cell, more than one chunk?); each compiles when first called: the parallel versions only when a big
# model first needs them.
_VERSIONS = [(cell, parallel) for cell in ("gru", "lstm") for parallel in (False, True)]
FORWARD = {version: _compiled(_chain_forward_loop, *version) for version in _VERSIONS}
BACKWARD = {version: _compiled(_chain_backward_loop, *version) for version in _VERSIONS}
