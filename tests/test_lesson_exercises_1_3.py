"""The checkers of lessons 1-3's exercises (lessons/exercises/lesson01.py ... lesson03.py): each accepts its
solution (lessons/solutions/), rejects specific wrong answers with a message that points at the right place,
says "not done yet" for an unfilled stub, and never raises, whatever the reader's function does.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from lessons.exercises import lesson01, lesson02, lesson03
from lessons.solutions import lesson01 as solution01
from lessons.solutions import lesson02 as solution02
from lessons.solutions import lesson03 as solution03

LESSONS = Path(__file__).resolve().parent.parent / "lessons"


def stub(*args):
    raise NotImplementedError


def run(capsys, check, *functions):
    """(the checker's verdict, what it printed)."""
    verdict = check(*functions)
    return verdict, capsys.readouterr().out


def rejected(capsys, check, *functions, expect=()):
    """The checker says no, and its message contains each of ``expect`` (a regex, case-insensitive)."""
    verdict, out = run(capsys, check, *functions)
    assert verdict is False, out
    assert "not yet" in out, out
    for pattern in expect:
        assert re.search(pattern, out, flags=re.I | re.S), f"{pattern!r} not in:\n{out}"
    return out


def changed(function, index, how):
    """``function`` with its returned tuple's entry ``index`` replaced by ``how(entry, *args)``."""
    def wrong(*args):
        result = list(function(*args))
        result[index] = how(result[index], *args)
        return tuple(result)
    return wrong


# --- lesson 1, exercise 1: the Gaussian's backward ------------------------------------------------------

def test_gaussian_checker_accepts_the_solution(capsys):
    verdict, out = run(capsys, lesson01.check_gaussian_backward, solution01.gaussian_backward)
    assert verdict is True and "✓" in out


def test_gaussian_checker_says_not_done_for_a_stub(capsys):
    verdict, out = run(capsys, lesson01.check_gaussian_backward, stub)
    assert verdict is False and "not done yet" in out


def test_gaussian_checker_names_a_flipped_sign(capsys):
    wrong = changed(solution01.gaussian_backward, 1, lambda dmu, *a: -dmu)
    out = rejected(capsys, lesson01.check_gaussian_backward, wrong, expect=[r"dmu: \d+ of \d+ entries", "sign is flipped"])
    assert "dx:" not in out and "dsigma:" not in out  # only the wrong output is named


def test_gaussian_checker_names_a_factor(capsys):
    wrong = changed(solution01.gaussian_backward, 2, lambda dsigma, *a: 2 * dsigma)
    rejected(capsys, lesson01.check_gaussian_backward, wrong,
             expect=[r"dsigma: \d+ of \d+ entries", "2 times the right one", r"-log sigma_d and inside u_d"])


def test_gaussian_checker_names_a_missing_term(capsys):
    wrong = changed(solution01.gaussian_backward, 2, lambda dsigma, dlogp, x, mu, sigma: -dlogp[:, None] / sigma)
    rejected(capsys, lesson01.check_gaussian_backward, wrong, expect=[r"dsigma: \d+ of \d+ entries", r"the worst, at \("])


def test_gaussian_checker_names_a_missing_upstream_gradient(capsys):
    def wrong(dlogp, x, mu, sigma):
        return solution01.gaussian_backward(np.ones_like(dlogp), x, mu, sigma)
    rejected(capsys, lesson01.check_gaussian_backward, wrong,
             expect=["random upstream gradients", "right if the upstream gradient were 1"])


@pytest.mark.parametrize("bad", [lambda *a: None, lambda *a: (1, 2), lambda *a: 1 / 0,
                                 lambda d, x, m, s: (x, m, np.full_like(s, np.nan))])
def test_gaussian_checker_never_raises(capsys, bad):
    verdict, out = run(capsys, lesson01.check_gaussian_backward, bad)
    assert verdict is False and "not yet" in out


# --- lesson 1, exercise 2: the mixture --------------------------------------------------------------------

def no_shift_forward(x, logits, mu, sigma):
    """The textbook log of the weighted sum, without the max shift."""
    weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    u = (x[:, None, :] - mu) / sigma
    dens = np.exp(-0.5 * (np.log(2 * np.pi) + 2 * np.log(sigma) + u * u).sum(axis=2))
    return np.log((weights * dens).sum(axis=1))


def no_shift_backward(dlogp, x, logits, mu, sigma):
    """Right but for the responsibilities, computed as exp(a_k) / sum_j exp(a_j)."""
    a, log_pi = solution01._log_terms(x, logits, mu, sigma)
    resp = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    da = dlogp[:, None] * resp
    dlogits = da - np.exp(log_pi) * da.sum(axis=1, keepdims=True)
    return (solution01.gmm_backward(dlogp, x, logits, mu, sigma)[0], dlogits,
            *solution01.gmm_backward(dlogp, x, logits, mu, sigma)[2:])


def test_gmm_checker_accepts_the_solution(capsys):
    verdict, out = run(capsys, lesson01.check_gmm, solution01.gmm_forward, solution01.gmm_backward)
    assert verdict is True and "✓" in out


def test_gmm_checker_says_not_done_for_stubs(capsys):
    for functions in [(stub, stub), (solution01.gmm_forward, stub), (stub, solution01.gmm_backward)]:
        verdict, out = run(capsys, lesson01.check_gmm, *functions)
        assert verdict is False and "not done yet" in out


def test_gmm_checker_catches_a_missing_max_shift(capsys):
    out = rejected(capsys, lesson01.check_gmm, no_shift_forward, solution01.gmm_backward,
                   expect=["far from every component", r"logp: holds NaN or Inf", "max shift"])
    assert "RuntimeWarning" not in out


def test_gmm_checker_catches_overflowing_responsibilities(capsys):
    rejected(capsys, lesson01.check_gmm, solution01.gmm_forward, no_shift_backward,
             expect=["far from every component", r"dlogits: holds NaN or Inf", r"exp\(a_k - logp\)"])


def test_gmm_checker_catches_overflow_of_sharp_components(capsys):
    """Far from every component underflows; sharp components in D = 128 overflow: both are checked."""
    def shift_only_when_negative(x, logits, mu, sigma):
        a, _ = solution01._log_terms(x, logits, mu, sigma)
        m = np.minimum(a.max(axis=1, keepdims=True), 0.0)  # a wrong "fix" that only handles underflow
        return (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]
    rejected(capsys, lesson01.check_gmm, shift_only_when_negative, solution01.gmm_backward,
             expect=["sharp components", "logp: holds NaN or Inf"])


def test_gmm_checker_catches_an_unshifted_log_softmax(capsys):
    def forward(x, logits, mu, sigma):
        log_pi = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # overflows for logits ~ 1000
        u = (x[:, None, :] - mu) / sigma
        a = log_pi - 0.5 * (np.log(2 * np.pi) + 2 * np.log(sigma) + u * u).sum(axis=2)
        m = a.max(axis=1, keepdims=True)
        return (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]
    rejected(capsys, lesson01.check_gmm, forward, solution01.gmm_backward, expect=["logits near 1000", "logp: holds NaN or Inf", "max shift"])


def test_gmm_checker_names_wrong_gradients(capsys):
    rejected(capsys, lesson01.check_gmm, solution01.gmm_forward,
             changed(solution01.gmm_backward, 1, lambda g, *a: -g),
             expect=["ordinary case", r"dlogits: \d+ of \d+ entries", "sign is flipped"])
    rejected(capsys, lesson01.check_gmm, solution01.gmm_forward,
             changed(solution01.gmm_backward, 2, lambda g, *a: 0.5 * g),
             expect=[r"dmu: \d+ of \d+ entries", "0.5 times the right one"])
    rejected(capsys, lesson01.check_gmm, solution01.gmm_forward,  # dx not summed over the K components
             changed(solution01.gmm_backward, 0, lambda g, d, x, lo, mu, s: np.repeat(g[:, None] / mu.shape[1], mu.shape[1], 1)),
             expect=[r"dx: shape \(4, 3, 2\), expected \(4, 2\)", "shared by the K components"])

    def unnormalised(dlogp, x, logits, mu, sigma):  # forgets that log_softmax normalises: dlogits = da
        a, _ = solution01._log_terms(x, logits, mu, sigma)
        da = dlogp[:, None] * np.exp(a - solution01.gmm_forward(x, logits, mu, sigma)[:, None])
        return (solution01.gmm_backward(dlogp, x, logits, mu, sigma)[0], da,
                *solution01.gmm_backward(dlogp, x, logits, mu, sigma)[2:])
    rejected(capsys, lesson01.check_gmm, solution01.gmm_forward, unnormalised,
             expect=[r"dlogits: \d+ of \d+ entries", "log_softmax"])


# --- lesson 2: the KL's gradient ---------------------------------------------------------------------------

def test_kl_checker_accepts_the_solution(capsys):
    verdict, out = run(capsys, lesson02.check_kl_backward, solution02.kl_backward)
    assert verdict is True and "✓" in out


def test_kl_checker_says_not_done_for_a_stub(capsys):
    verdict, out = run(capsys, lesson02.check_kl_backward, stub)
    assert verdict is False and "not done yet" in out


def test_kl_checker_names_wrong_gradients(capsys):
    out = rejected(capsys, lesson02.check_kl_backward, changed(solution02.kl_backward, 2, lambda g, *a: -g),
                   expect=[r"dmu_p: \d+ of \d+ entries", "sign is flipped", "central differences .* agree"])
    assert "dmu_q:" not in out and "dsigma_q:" not in out
    rejected(capsys, lesson02.check_kl_backward, changed(solution02.kl_backward, 1, lambda g, *a: 2 * g),
             expect=[r"dsigma_q: \d+ of \d+ entries", "2 times the right one", "log\\(sigma_p / sigma_q\\)"])

    def no_mean_term(dkl, mu_q, sigma_q, mu_p, sigma_p):  # dsigma_p forgets (mu_q - mu_p)^2 / (2 sigma_p^2)
        r = solution02.kl_backward(dkl, mu_q, sigma_q, mu_p, sigma_p)
        return r[0], r[1], r[2], dkl[:, None] * (1 / sigma_p - sigma_q**2 / sigma_p**3)
    rejected(capsys, lesson02.check_kl_backward, no_mean_term,
             expect=[r"dsigma_p: \d+ of \d+ entries", "divides both sigma_q\\^2 and \\(mu_q - mu_p\\)\\^2"])

    def ignores_dkl(dkl, *args):
        return solution02.kl_backward(np.ones_like(dkl), *args)
    rejected(capsys, lesson02.check_kl_backward, ignores_dkl,
             expect=["random upstream gradients", "right if the upstream gradient were 1"])


def test_kl_checker_never_raises(capsys):
    for bad in [lambda *a: None, lambda *a: solution02.kl_backward(*a)[:3], lambda *a: {}[0]]:
        verdict, out = run(capsys, lesson02.check_kl_backward, bad)
        assert verdict is False and "not yet" in out


# --- lesson 3: the bug hunt ------------------------------------------------------------------------------

def notebook_step():
    """The buggy ``generative_step`` exactly as lesson 3's notebook gives it to the reader."""
    import nbformat
    notebook = nbformat.read(LESSONS / "03_vrnn_generation.ipynb", as_version=4)
    [source] = [c.source for c in notebook.cells
                if c.cell_type == "code" and c.source.startswith("def generative_step(")]
    namespace = {}
    exec("import numpy as np\n"
         "from minivrnn.ops.heads import gaussian_head_forward, output_params_forward\n"
         "from minivrnn.ops.linear import mlp_forward\n"
         "from minivrnn.params import sub\n"
         "from minivrnn.readable import cell_forward\n" + source, namespace)
    return namespace["generative_step"]


def test_generative_step_checker_accepts_the_fix(capsys):
    verdict, out = run(capsys, lesson03.check_generative_step, solution03.generative_step)
    assert verdict is True and "✓" in out


def test_generative_step_checker_exposes_the_notebooks_bug(capsys):
    """The notebook's step: its prior reads h_t. The checker says so and points at the prior's line."""
    out = rejected(capsys, lesson03.check_generative_step, notebook_step(),
                   expect=[r"prior \(mu_0, sigma_0\) of eq\. \(4\) moved when only z_t changed",
                           "when only x_t changed", "line that computes the prior", r"it is h_t, not h_\{t-1\}",
                           r"step 1 of 4.*mu_0 \(the prior, eq\. \(4\)\)"])
    assert "decoder" not in out and "h_t (the recurrence" not in out  # the decoder and the state are right


def test_generative_step_checker_exposes_a_decoder_that_reads_h_t(capsys):
    def decoder_peeks(params, config, h_prev, z_t, x_t):
        prior, _, h_t = solution03.generative_step(params, config, h_prev, z_t, x_t)
        _, dec, _ = solution03.generative_step(params, config, h_t, z_t, x_t)
        return prior, dec, h_t
    out = rejected(capsys, lesson03.check_generative_step, decoder_peeks,
                   expect=[r"decoder \(mu_x, sigma_x\) of eq\. \(5\) moved when only x_t changed",
                           r"mu_x \(the decoder"])
    assert "prior (mu_0, sigma_0) of eq. (4) moved" not in out


def test_generative_step_checker_exposes_a_state_that_does_not_move(capsys):
    def no_recurrence(params, config, h_prev, z_t, x_t):
        prior, dec, _ = solution03.generative_step(params, config, h_prev, z_t, x_t)
        return prior, dec, h_prev
    rejected(capsys, lesson03.check_generative_step, no_recurrence,
             expect=["h_t did not move when z_t changed", r"h_t \(the recurrence, eq\. \(6\)\)"])


def test_generative_step_checker_never_raises(capsys):
    for bad in [stub, lambda *a: None, lambda *a: (1, 2, 3), lambda *a: [][0]]:
        verdict, out = run(capsys, lesson03.check_generative_step, bad)
        assert verdict is False and ("not yet" in out or "not done yet" in out)
    verdict, out = run(capsys, lesson03.check_generative_step, stub)
    assert "not done yet" in out


# --- the notebooks: every checker is called, no solution is imported ---------------------------------------

@pytest.mark.parametrize("name, checks", [
    ("01_rnn_density_model.ipynb", ["check_gaussian_backward(gaussian_backward)", "check_gmm(gmm_forward, gmm_backward)"]),
    ("02_vae_bound.ipynb", ["check_kl_backward(kl_backward)"]),
    ("03_vrnn_generation.ipynb", ["check_generative_step(generative_step)"]),
])
def test_notebooks_call_their_checkers_and_never_import_solutions(name, checks):
    import nbformat
    code = "\n".join(c.source for c in nbformat.read(LESSONS / name, as_version=4).cells if c.cell_type == "code")
    for check in checks:
        assert check in code, f"{name} does not call {check}"
    assert "solutions" not in code, f"{name} imports a solution"
