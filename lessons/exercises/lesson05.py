"""Lesson 5's checkers: one GRU step backward written by the reader, and two bug hunts (a slip in the KL's
backward pass, the mask dropped from one term of a VRNN step's backward pass).

Each ``check_*`` compares the reader's function with minivrnn's and with float64 central differences, names
the gradient that is wrong (and by how much, and where it can tell, which path or term is missing), and
returns True or False. It never raises on a wrong or unfinished answer.
"""
import numpy as np

import minivrnn.readable
from minivrnn import VRNNConfig, init_params, loss_and_grads
from minivrnn.gradcheck import gradcheck, numerical_gradient
from minivrnn.ops.gru import KEYS as GRU_KEYS
from minivrnn.ops.gru import gru_cell_backward, gru_cell_forward, init_gru
from minivrnn.ops.kl import kl_gaussian_backward, kl_gaussian_forward

from .common import attempt, compare, run_check

TOL = 1e-6  # gradcheck's relative error above which a gradient is wrong (right ones give about 1e-10)


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))  # = 1 / (1 + exp(-a)), without overflow


def gru_step_forward(p, x, h):
    """One GRU step h' = f(x, h) of eqs. (1) and (6), PyTorch's convention; x (B, I), h (B, H).
    Returns h_new (B, H) and the cache that gru_step_backward reads."""
    r = _sigmoid(x @ p["W_ir"] + p["b_ir"] + h @ p["W_hr"] + p["b_hr"])  # reset gate (B, H)
    u = _sigmoid(x @ p["W_iz"] + p["b_iz"] + h @ p["W_hz"] + p["b_hz"])  # update gate (PyTorch's z)
    s_n = h @ p["W_hn"] + p["b_hn"]  # the state's part of the candidate, before the reset gate
    n = np.tanh(x @ p["W_in"] + p["b_in"] + r * s_n)  # the candidate state
    h_new = (1 - u) * n + u * h
    return h_new, {"p": p, "x": x, "h": h, "r": r, "u": u, "s_n": s_n, "n": n}


def _hint(name, got, expected, paths=()):
    """A few words on how ``got`` is wrong when it is a simple slip: the sign, a constant factor, or one of
    ``paths`` (label, contribution) missing from a sum."""
    if np.allclose(got, -expected, rtol=1e-6, atol=1e-10):
        return f"{name} has the wrong sign"
    nonzero = np.abs(expected) > 1e-8 * np.max(np.abs(expected), initial=0)
    if nonzero.any():
        ratio = got[nonzero] / expected[nonzero]
        if np.allclose(ratio, ratio[0], rtol=1e-6) and not np.isclose(ratio[0], 0):
            return f"{name} is {ratio[0]:.4g} times the right value"
    for label, part in paths:
        if np.allclose(got, expected - part, rtol=1e-6, atol=1e-10):
            return f"{name} lacks the path {label}: a variable read twice receives the sum of both gradients"
    if np.allclose(got, 0):
        return f"{name} is all zeros"
    return ""


def _finite_differences(forward, inputs, name, dy):
    return numerical_gradient(forward, inputs, name, dy)


# --- exercise: one GRU step, backward -----------------------------------------------------------------------

GRU_NAMES = ("dx", "dh_prev") + tuple(f"d{k}" for k in GRU_KEYS)


def check_gru_step_backward(gru_step_backward):
    """``gru_step_backward(dh_new, cache)`` -> (dx, dh_prev, grads) for the cache of gru_step_forward, grads a
    dict keyed W_ir, W_iz, W_in, W_hr, W_hz, W_hn, b_ir, ..., b_hn."""

    def body():
        problems = []
        for case, (B, I, H) in enumerate([(3, 4, 5), (2, 3, 2)]):
            rng = np.random.default_rng(10 + case)
            p = init_gru(rng, I, H)
            p = {k: v * 2.0 for k, v in p.items()}  # gates further from 1/2, so that slips show
            x, h = rng.normal(size=(B, I)), rng.normal(size=(B, H)) * 0.8
            dh_new = rng.normal(size=(B, H))
            _, cache = gru_step_forward(p, x, h)
            out, error = attempt(gru_step_backward, dh_new.copy(), cache)
            if error:
                return [error]
            if not (isinstance(out, tuple) and len(out) == 3 and isinstance(out[2], dict)):
                return [f"expected (dx, dh_prev, grads) with grads a dict, got {type(out).__name__}"]
            dx, dh, grads = out
            missing = [k for k in GRU_KEYS if k not in grads]
            if missing:
                return [f"grads has no {', '.join(missing)} (it has {', '.join(map(str, grads)) or 'nothing'})"]
            got = {"dx": dx, "dh_prev": dh, **{f"d{k}": grads[k] for k in GRU_KEYS}}
            want_dx, want_dh, want_g = gru_cell_backward(dh_new, gru_cell_forward(p, x, h)[1])
            want = {"dx": want_dx, "dh_prev": want_dh, **{f"d{k}": want_g[k] for k in GRU_KEYS}}
            paths = _gru_paths(p, x, h, dh_new)
            inputs = {"x": x, "h": h, **p}

            def forward(x, h, **p):
                return gru_step_forward(p, x, h)[0]

            for name in GRU_NAMES:
                problem = compare(name, got[name], want[name], rtol=1e-7, atol=1e-10)
                if not problem:
                    continue
                g = np.asarray(got[name], dtype=np.float64)
                if g.shape == want[name].shape and np.all(np.isfinite(g)):
                    key = {"dx": "x", "dh_prev": "h"}.get(name, name[1:])
                    fd = _finite_differences(forward, inputs, key, dh_new)
                    scale = max(np.max(np.abs(fd)), np.max(np.abs(g)))
                    problem += f"; float64 finite differences agree with minivrnn (your relative error {np.max(np.abs(g - fd)) / scale:.1e})"
                    hint = _hint(name, g, want[name], paths.get(name, ()))
                    if hint:
                        problem += f": {hint}"
                problems.append(f"case {case + 1} (B={B}, I={I}, H={H}): {problem}")
            if problems:
                return problems
        return problems

    return run_check("gru_step_backward", body)


def _gru_paths(p, x, h, dh_new):
    """The contributions that add up in dx and dh_prev, one per path, for the hints."""
    _, c = gru_step_forward(p, x, h)
    r, u, s_n, n = c["r"], c["u"], c["s_n"], c["n"]
    da_n = dh_new * (1 - u) * (1 - n**2)
    da_u = dh_new * (h - n) * u * (1 - u)
    da_r = da_n * s_n * r * (1 - r)
    return {
        "dx": [("through the candidate n (W_in)", da_n @ p["W_in"].T),
               ("through the update gate u (W_iz)", da_u @ p["W_iz"].T),
               ("through the reset gate r (W_ir)", da_r @ p["W_ir"].T)],
        "dh_prev": [("straight through h' = ... + u * h (dh_new * u)", dh_new * u),
                    ("through the candidate n (r * (h W_hn + b_hn))", (da_n * r) @ p["W_hn"].T),
                    ("through the update gate u (W_hz)", da_u @ p["W_hz"].T),
                    ("through the reset gate r (W_hr)", da_r @ p["W_hr"].T)],
    }


# --- bug hunt: the KL's backward pass -----------------------------------------------------------------------

KL_NAMES = ("mu_q", "sigma_q", "mu_p", "sigma_p")


def _kl_forward(mu_q, sigma_q, mu_p, sigma_p):
    return kl_gaussian_forward(mu_q, sigma_q, mu_p, sigma_p)[0]


def check_kl_backward(kl_backward):
    """``kl_backward(dkl, mu_q, sigma_q, mu_p, sigma_p)`` -> {"mu_q": ..., "sigma_q": ..., "mu_p": ...,
    "sigma_p": ...}: the gradients of sum(dkl * KL(q || p)), each of the inputs' shape (..., Z)."""

    def body():
        rng = np.random.default_rng(20)
        B, Z = 5, 3
        inputs = {"mu_q": rng.normal(size=(B, Z)), "sigma_q": rng.uniform(0.3, 2.0, (B, Z)),
                  "mu_p": rng.normal(size=(B, Z)), "sigma_p": rng.uniform(0.3, 2.0, (B, Z))}
        dkl = rng.normal(size=B)
        out, error = attempt(kl_backward, dkl.copy(), *(inputs[n].copy() for n in KL_NAMES))
        if error:
            return [error]
        if not isinstance(out, dict) or any(n not in out for n in KL_NAMES):
            return [f"expected a dict with keys {', '.join(KL_NAMES)}, got {type(out).__name__}"
                    + (f" with keys {', '.join(map(str, out))}" if isinstance(out, dict) else "")]
        want = dict(zip(KL_NAMES, kl_gaussian_backward(dkl, kl_gaussian_forward(*(inputs[n] for n in KL_NAMES))[1])))
        problems = []
        for name in KL_NAMES:
            problem = compare(f"d{name}", out[name], want[name], rtol=1e-7, atol=1e-10)
            if not problem:
                continue
            g = np.asarray(out[name], dtype=np.float64)
            if g.shape == want[name].shape and np.all(np.isfinite(g)):
                fd = _finite_differences(_kl_forward, inputs, name, dkl)
                scale = max(np.max(np.abs(fd)), np.max(np.abs(g)))
                problem += f"; finite differences: your relative error {np.max(np.abs(g - fd)) / scale:.1e}"
                hint = _hint(f"d{name}", g, want[name])
                if hint:
                    problem += f": {hint}"
            problems.append(problem)
        if problems and len(problems) < len(KL_NAMES):
            right = [f"d{n}" for n in KL_NAMES if not compare(n, out[n], want[n], rtol=1e-7, atol=1e-10)]
            problems.append(f"{', '.join(right)} {'is' if len(right) == 1 else 'are'} right: the slip is in the "
                            "line(s) named above")
        return problems

    return run_check("kl_backward", body)


# --- bug hunt: the mask in a VRNN step's backward pass ------------------------------------------------------

def tiny_vrnn():
    """Lesson 5's tiny VRNN-Gauss (D = 2, Z = 2, H = 3, F = 4) and a batch of T = 5 steps, B = 3 sequences:
    returns config, params, x, eps."""
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=3, feat_dim=4, model="vrnn-gauss")
    params = init_params(config, seed=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3, config.x_dim))
    eps = rng.normal(size=(5, 3, config.z_dim))
    return config, params, x, eps


def lengths_mask(T, lengths):
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(np.float64)


def _part(name):
    return name.split(".")[0]


def worst_by_part(errors):
    parts = {}
    for name, error in errors.items():
        parts[_part(name)] = max(parts.get(_part(name), 0.0), error)
    return parts


def model_gradcheck(config, params, x, mask, eps):
    """gradcheck of loss_and_grads(engine="readable") over every bias of the model: {name: relative error}.
    (Every weight's gradient is x^T da for the same da as its bias's, sum da: a slip that reaches a layer
    shows in its bias, and the check takes a sixth of the time of one over all the parameters.)"""

    def loss_fn(**p):
        return np.array(loss_and_grads(p, config, x, mask, eps, engine="readable")[0])

    def grads_fn(dloss, **p):
        return {k: dloss * g for k, g in loss_and_grads(p, config, x, mask, eps, engine="readable")[1].items()}

    return gradcheck(loss_fn, grads_fn, params, wrt=[k for k in params if k.rsplit(".", 1)[-1].startswith("b")])


def _with_step_backward(step_backward, function, *args):
    """function(*args) while minivrnn.readable.vrnn_step_backward is ``step_backward`` (restored after)."""
    original = minivrnn.readable.vrnn_step_backward
    minivrnn.readable.vrnn_step_backward = step_backward
    try:
        return function(*args)
    finally:
        minivrnn.readable.vrnn_step_backward = original


TERM_OF_PART = {
    "prior": "the KL term (the prior reaches the loss only through the KL)",
    "dec": "the reconstruction term -log p(x_t | z_<=t, x_<t) (the decoder reaches the loss only through it)",
    "gru": "the state update (masked_state_backward: a padded step keeps h_{t-1})",
}


def padded_step_leaks(vrnn_step_backward, config, params, x, eps):
    """Run the reader's step backward on a step where every sequence is padded (mask 0). Nothing may reach
    the parameters there, and the state's gradient must pass through unchanged. Returns (problem lines)."""
    T, B = 2, x.shape[1]
    mask = np.zeros((T, B))
    mask[0] = 1  # step 0 real, step 1 padded for every sequence
    _, cache = minivrnn.readable.forward(params, config, x[:T], mask, eps[:T], (np.zeros((B, config.h_dim)),), 1.0)
    step = cache["steps"][1]
    dstate = (np.random.default_rng(1).normal(size=(B, config.h_dim)),)
    out, error = attempt(vrnn_step_backward, np.full(B, 1 / B), np.full(B, 1 / B), dstate, step)
    if error:
        return [f"on a padded step your vrnn_step_backward {error}"]
    dprev, grads = out
    leaks = {}
    for name, g in grads.items():
        size = float(np.max(np.abs(g), initial=0.0))
        if size > 1e-12:
            leaks[_part(name)] = max(leaks.get(_part(name), 0.0), size)
    lines = []
    if leaks:
        parts = ", ".join(f"{part}.* (up to {size:.2g})" for part, size in sorted(leaks.items()))
        terms = [TERM_OF_PART[p] for p in ("prior", "dec", "gru") if p in leaks]
        line = (f"on a step where every sequence is padded (mask 0) nothing may reach the parameters, yet your "
                f"step gives {parts} a gradient")
        if terms:
            line += f": the gradient of {' and of '.join(terms)} is not multiplied by the mask"
        lines.append(line)
    if not np.allclose(dprev[0], dstate[0], rtol=1e-12, atol=1e-12):
        lines.append("on a padded step the gradient reaching h_{t-1} should be the one reaching h_t, unchanged "
                     "(the state is only carried over); yours differs")
    return lines


def check_vrnn_step_backward(vrnn_step_backward):
    """``vrnn_step_backward(dnll, dkl, dstate, cache)`` -> (dstate_prev, grads), as in minivrnn/readable.py:
    checked inside the whole model by a gradient check on a batch of full-length sequences and on a batch
    of ragged lengths (5, 3, 1), and on a step where every sequence is padded."""

    def body():
        config, params, x, eps = tiny_vrnn()
        T, B = x.shape[:2]
        results = {}
        for label, lengths in (("lengths 5, 5, 5 (no padding)", [5, 5, 5]), ("lengths 5, 3, 1", [5, 3, 1])):
            mask = lengths_mask(T, lengths)
            errors, error = attempt(_with_step_backward, vrnn_step_backward, model_gradcheck,
                                    config, params, x, mask, eps)
            if error:
                return [f"{label}: {error}"]
            results[label] = worst_by_part(errors)
        problems = []
        for label, parts in results.items():
            wrong = {p: e for p, e in parts.items() if e >= TOL}
            if wrong:
                problems.append(f"gradient check, {label}: " + ", ".join(f"{p} {e:.1e}" for p, e in wrong.items())
                                + f" wrong (above {TOL:g}); " + ", ".join(p for p in parts if p not in wrong)
                                + " right")
        full = results["lengths 5, 5, 5 (no padding)"]
        if problems and all(e < TOL for e in full.values()):
            problems.append("every part passes while no sequence is padded: the slip is in how a padded step "
                            "(mask 0) is treated")
        if problems:
            problems += padded_step_leaks(vrnn_step_backward, config, params, x, eps)
        return problems

    return run_check("vrnn_step_backward", body)

