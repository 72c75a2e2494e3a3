"""Checker for lesson 3's bug hunt: one step of the VRNN's generative model, eqs. (4)-(6).

``check_generative_step(generative_step)`` calls ``generative_step(params, config, h_prev, z_t, x_t)``, which
returns ``((mu_0, sigma_0), (mu_x, sigma_x), h_t)``: the prior of eq. (4), the decoder's Gaussian of eq. (5)
and the new state of eq. (6), for a given state h_{t-1} (B, H), latent z_t (B, Z) and frame x_t (B, D). It
checks two things:

1. what each part may read: the prior must not move when only z_t or x_t changes (it reads h_{t-1} alone),
   the decoder must move with z_t but not with x_t, the state must move with both;
2. the numbers, step by step, against minivrnn's own step (``minivrnn.readable.vrnn_step_forward``, the one
   that training runs) on a small VRNN-Gauss, each step started from the package's h_{t-1}.
"""
import numpy as np

from minivrnn import VRNNConfig, init_params
from minivrnn.readable import vrnn_step_forward

from .common import attempt, run_check
from .lesson01 import explain, unpack

EXACT = dict(rtol=1e-9, atol=1e-12)  # the same float64 operations in the same order agree to rounding


def reference_steps(T=4, B=5, seed=31):
    """A small float64 VRNN-Gauss and T steps of it on random x, z_t drawn by the encoder with fixed noise:
    returns (params, config, [{h_prev, z, x, prior, dec, h} for each step])."""
    config = VRNNConfig(x_dim=3, z_dim=2, h_dim=8, feat_dim=8, model="vrnn-gauss")
    params = init_params(config, seed=3, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, config.x_dim))
    eps = rng.standard_normal((T, B, config.z_dim))
    state, steps = (np.zeros((B, config.h_dim)),), []
    for t in range(T):
        new_state, out, cache = vrnn_step_forward(params, config, x[t], np.ones(B), eps[t], state)
        _, dec_mu, dec_sigma = cache["logp"]  # the Gaussian output's cache: (x_t, mu_x, sigma_x)
        steps.append({"h_prev": state[0], "z": out["q_mu"] + out["q_sigma"] * eps[t], "x": x[t],
                      "prior": (out["p_mu"], out["p_sigma"]), "dec": (dec_mu, dec_sigma), "h": new_state[0]})
        state = new_state
    return params, config, steps


def _call(step, params, config, h_prev, z, x):
    """The reader's step as [mu_0, sigma_0, mu_x, sigma_x, h_t], or a problem line."""
    got, error = attempt(step, params, config, h_prev.copy(), z.copy(), x.copy())
    if error:
        return None, f"your function {error}"
    got, problem = unpack(got, ("(mu_0, sigma_0)", "(mu_x, sigma_x)", "h_t"))
    if problem:
        return None, problem
    (prior, p1), (dec, p2) = unpack(got[0], ("mu_0", "sigma_0")), unpack(got[1], ("mu_x", "sigma_x"))
    if p1 or p2:
        return None, p1 or p2
    return [np.asarray(a, dtype=np.float64) for a in (*prior, *dec, got[2])], ""


def _moved(a, b):
    """The largest change between two lists of arrays (inf if a shape changed)."""
    return max((np.abs(u - v).max() if u.shape == v.shape else np.inf) for u, v in zip(a, b))


def _what_reads_what(step, params, config, s):
    """Problem lines from nudging z_t alone and x_t alone at one step."""
    base, problem = _call(step, params, config, s["h_prev"], s["z"], s["x"])
    if problem:
        return [problem]
    nudged_z, problem_z = _call(step, params, config, s["h_prev"], s["z"] + 0.7, s["x"])
    nudged_x, problem_x = _call(step, params, config, s["h_prev"], s["z"], s["x"] + 0.7)
    if problem_z or problem_x:
        return [problem_z or problem_x]
    problems = []
    prior_z, prior_x = _moved(base[:2], nudged_z[:2]), _moved(base[:2], nudged_x[:2])
    if prior_z > 1e-12 or prior_x > 1e-12:
        which = " and when ".join(f"only {name} changed (by up to {d:.3g})"
                             for name, d in (("z_t", prior_z), ("x_t", prior_x)) if d > 1e-12)
        problems.append(
            f"the prior (mu_0, sigma_0) of eq. (4) moved when {which}. The prior of step t is "
            "p(z_t | x_<t, z_<t): it reads h_{t-1}, which has seen neither z_t nor x_t. Find the line that "
            "computes the prior and look at the state it reads: it has already been through eq. (6) with "
            "this step's z_t and x_t — it is h_t, not h_{t-1}")
    dec_x, dec_z = _moved(base[2:4], nudged_x[2:4]), _moved(base[2:4], nudged_z[2:4])
    if dec_x > 1e-12:
        problems.append(
            f"the decoder (mu_x, sigma_x) of eq. (5) moved when only x_t changed (by up to {dec_x:.3g}): it "
            "reads phi_z(z_t) and h_{t-1}; a decoder that sees x_t (through h_t) is scoring a value it was "
            "shown. Look at the state the decoder's line reads")
    if dec_z <= 1e-12:
        problems.append("the decoder (mu_x, sigma_x) of eq. (5) did not move when z_t changed: it must read "
                        "phi_z(z_t)")
    for name, d in (("z_t", _moved(base[4:], nudged_z[4:])), ("x_t", _moved(base[4:], nudged_x[4:]))):
        if d <= 1e-12:
            problems.append(f"h_t did not move when {name} changed: eq. (6) reads phi_x(x_t) and phi_z(z_t)")
    return problems


def _numbers(step, params, config, steps):
    """Problem lines from the first step whose numbers differ from minivrnn's."""
    for t, s in enumerate(steps, start=1):
        got, problem = _call(step, params, config, s["h_prev"], s["z"], s["x"])
        if problem:
            return [f"step {t}: {problem}"]
        expected = (*s["prior"], *s["dec"], s["h"])
        names = ("mu_0 (the prior, eq. (4))", "sigma_0 (the prior, eq. (4))", "mu_x (the decoder, eq. (5))",
                 "sigma_x (the decoder, eq. (5))", "h_t (the recurrence, eq. (6))")
        problems = [explain(n, g, e, **EXACT) for n, g, e in zip(names, got, expected)]
        problems = [f"step {t} of {len(steps)}, started from minivrnn's h_{t - 1}: {p}" for p in problems if p]
        if problems:
            return problems
    return []


def check_generative_step(generative_step):
    """The bug hunt: prints what the step reads that it must not, and where its numbers first differ from
    minivrnn's. Returns True once the step is right."""
    params, config, steps = reference_steps()

    def body():
        problems = _what_reads_what(generative_step, params, config, steps[1])
        return problems + _numbers(generative_step, params, config, steps)

    return run_check("one step of the generative model, eqs. (4)-(6)", body)
