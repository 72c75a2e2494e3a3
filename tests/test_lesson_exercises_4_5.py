"""The checkers of lessons 4 and 5 (lessons/exercises/lesson04.py, lesson05.py): each accepts the solution
(lessons/solutions/), rejects the bug as the notebook commits it and other specific wrong answers with a
message that points at the right place, says "not done yet" for an unfinished function, and never raises.

The planted bugs are taken from the committed notebooks themselves (the function's definition is cut out of
its cell), so a notebook and its checker cannot drift apart.
"""
import ast
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
sys.path.insert(0, str(LESSONS))  # the notebooks import their checkers as exercises.lessonNN, from lessons/

import minivrnn.readable  # noqa: E402
from exercises import lesson04 as ex4  # noqa: E402
from exercises import lesson05 as ex5  # noqa: E402
from solutions import lesson04 as sol4  # noqa: E402
from solutions import lesson05 as sol5  # noqa: E402


def run(check, function, capsys):
    """(returned verdict, printed text) of one checker call; the checker must not raise."""
    verdict = check(function)
    return verdict, capsys.readouterr().out


def from_notebook(notebook, name, namespace):
    """The function ``name`` as the committed notebook defines it, executed in ``namespace``."""
    nb = nbformat.read(LESSONS / notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and f"def {name}(" in cell.source:
            source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
            tree = ast.parse(source)
            defs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name]
            module = ast.Module(body=defs, type_ignores=[])
            exec(compile(module, f"{notebook}:{name}", "exec"), namespace)
            return namespace[name]
    raise AssertionError(f"{notebook} defines no {name}")


def variant(function, old, new, namespace):
    """A copy of ``function`` (a solution) with ``old`` replaced by ``new`` in its source."""
    source = inspect.getsource(function)
    assert old in source, old
    exec(source.replace(old, new), namespace)
    return namespace[function.__name__]


def stub(*args):
    raise NotImplementedError


# --- lesson 4 --------------------------------------------------------------------------------------------

NS4 = {name: getattr(sol4, name) for name in ("np", "forward", "gaussian_logpdf_forward", "kl_gaussian_forward",
                                              "vrnn_step_forward")}


def test_importance_estimate_accepts_the_solution_and_says_not_done_for_a_stub(capsys):
    assert run(ex4.check_importance_estimate, sol4.importance_estimate, capsys) == (
        True, "✓ importance_estimate: correct\n")
    verdict, out = run(ex4.check_importance_estimate, stub, capsys)
    assert not verdict and "not done yet" in out


@pytest.mark.parametrize("wrong, says", [
    (lambda lw: (np.log(np.mean(np.exp(lw), axis=-1)), np.ones(np.shape(lw)[:-1])), "underflows"),
    (lambda lw: (sol4.importance_estimate(lw)[0] + np.log(np.shape(lw)[-1]), sol4.importance_estimate(lw)[1]),
     "too high by log S"),
    (lambda lw: (np.mean(lw, axis=-1), sol4.importance_estimate(lw)[1]), "the mean of log w"),
    (lambda lw: (sol4.importance_estimate(lw)[0], 1 / sol4.importance_estimate(lw)[1]), "its reciprocal"),
    (lambda lw: None, "expected a pair"),
])
def test_importance_estimate_rejects_wrong_answers(wrong, says, capsys):
    with np.errstate(all="ignore"):
        verdict, out = run(ex4.check_importance_estimate, wrong, capsys)
    assert not verdict and "✗ importance_estimate: not yet" in out and says in out, out


def test_elbo_terms_accepts_the_solution(capsys):
    assert run(ex4.check_elbo_terms, sol4.elbo_terms, capsys) == (True, "✓ elbo_terms: correct\n")
    verdict, out = run(ex4.check_elbo_terms, stub, capsys)
    assert not verdict and "not done yet" in out


def test_elbo_terms_finds_the_swapped_kl_the_notebook_commits(capsys):
    buggy = from_notebook("04_vrnn_inference_elbo.ipynb", "elbo_terms", dict(NS4))
    verdict, out = run(ex4.check_elbo_terms, buggy, capsys)
    assert not verdict
    assert "- kl:" in out and "rec:" not in out, out  # the KL term is named, the reconstruction term is right
    assert "Yours equals KL(p || q)" in out and "Monte Carlo" in out and "standard errors" in out


@pytest.mark.parametrize("old, new, says", [
    ("return rec, (kl_t * mask).sum(axis=0)", "return rec, kl_t.sum(axis=0)", "counts the padded steps"),
    ("rec = -result[\"nll\"].sum(axis=0)", "rec = result[\"nll\"].sum(axis=0)", "- rec:"),
    ("return rec, (kl_t * mask).sum(axis=0)", "return rec", "expected a pair"),
])
def test_elbo_terms_rejects_other_slips(old, new, says, capsys):
    verdict, out = run(ex4.check_elbo_terms, variant(sol4.elbo_terms, old, new, dict(NS4)), capsys)
    assert not verdict and says in out, out


def test_sample_posterior_accepts_the_solution(capsys):
    assert run(ex4.check_sample_posterior, sol4.sample_posterior, capsys) == (True, "✓ sample_posterior: correct\n")
    verdict, out = run(ex4.check_sample_posterior, stub, capsys)
    assert not verdict and "not done yet" in out


def test_sample_posterior_finds_the_reused_noise_the_notebook_commits(capsys):
    buggy = from_notebook("04_vrnn_inference_elbo.ipynb", "sample_posterior", dict(NS4))
    verdict, out = run(ex4.check_sample_posterior, buggy, capsys)
    assert not verdict
    assert "corr(eps_t, eps_t+1) = 1.00" in out and "the same at all 40 steps" in out, out
    assert "log_w" not in out.split("\n", 1)[1]  # its log weight of its own z is right: only the noise is named


@pytest.mark.parametrize("old, new, says", [
    # the noise of step t reused at step t + 1 half of the time: correlated, not identical
    ("eps = rng.standard_normal((B, config.z_dim))  # was",
     "eps = rng.standard_normal((B, config.z_dim)) if t % 2 == 0 else eps  # was", "is correlated"),
    ("z[t] = out[\"q_mu\"] + out[\"q_sigma\"] * eps", "z[t] = out[\"q_mu\"] + 2 * out[\"q_sigma\"] * eps",
     "standard deviation"),
    ("eps = rng.standard_normal((B, config.z_dim))  # was",
     "eps = np.random.default_rng(t).standard_normal((B, config.z_dim))  # was", "the rng passed in"),
    ("log_w += -out[\"nll\"] + mask[t] * (log_p_z - log_q_z)", "log_w += -out[\"nll\"] + (log_p_z - log_q_z)",
     "- log_w:"),
])
def test_sample_posterior_rejects_other_slips(old, new, says, capsys):
    verdict, out = run(ex4.check_sample_posterior, variant(sol4.sample_posterior, old, new, dict(NS4)), capsys)
    assert not verdict and says in out, out


# --- lesson 5 --------------------------------------------------------------------------------------------

NS5 = {name: getattr(sol5, name) for name in ("heads", "kl_gaussian_backward", "mlp_backward", "reparam_backward",
                                              "add_prefixed", "cell_backward", "masked_state_backward",
                                              "prior_backward")}


def test_gru_step_backward_accepts_the_solution_and_says_not_done_for_a_stub(capsys):
    assert run(ex5.check_gru_step_backward, sol5.gru_step_backward, capsys) == (
        True, "✓ gru_step_backward: correct\n")
    verdict, out = run(ex5.check_gru_step_backward, stub, capsys)
    assert not verdict and "not done yet" in out


@pytest.mark.parametrize("old, new, says", [
    ("dh = dh_new * u  #", "dh = 0 * dh_new  #", "dh_prev lacks the path straight through h' = ... + u * h"),
    ("dx += da_u @ p[\"W_iz\"].T", "pass", "dx lacks the path through the update gate u"),
    ("g[\"W_hz\"], g[\"b_hz\"] = h.T @ da_u,", "g[\"W_hz\"], g[\"b_hz\"] = -h.T @ da_u,", "dW_hz has the wrong sign"),
    ("g[\"W_in\"], g[\"b_in\"] = x.T @ da_n, da_n.sum(axis=0)",
     "g[\"W_in\"], g[\"b_in\"] = x.T @ da_n, 0.5 * da_n.sum(axis=0)", "db_in is 0.5 times the right value"),
    ("da_n = dn * (1 - n**2)", "da_n = dn * (1 - n)", "- case 1"),
    ("g[\"W_hn\"], g[\"b_hn\"] = h.T @ ds_n, ds_n.sum(axis=0)", "pass", "grads has no W_hn, b_hn"),
])
def test_gru_step_backward_names_the_wrong_gradient(old, new, says, capsys):
    wrong = variant(sol5.gru_step_backward, old, new, {})
    verdict, out = run(ex5.check_gru_step_backward, wrong, capsys)
    assert not verdict and "✗ gru_step_backward: not yet" in out and says in out, out
    if "finite differences" in out:
        assert "relative error" in out


def test_gru_step_backward_names_only_what_is_wrong(capsys):
    wrong = variant(sol5.gru_step_backward, "g[\"W_hz\"], g[\"b_hz\"] = h.T @ da_u,",
                    "g[\"W_hz\"], g[\"b_hz\"] = -h.T @ da_u,", {})
    _, out = run(ex5.check_gru_step_backward, wrong, capsys)
    named = [line.split(": ", 2)[1] for line in out.splitlines() if line.startswith("  - ")]
    assert named == ["dW_hz"], out


def test_kl_backward_accepts_the_solution(capsys):
    assert run(ex5.check_kl_backward, sol5.kl_backward, capsys) == (True, "✓ kl_backward: correct\n")
    verdict, out = run(ex5.check_kl_backward, stub, capsys)
    assert not verdict and "not done yet" in out


def test_kl_backward_finds_the_slip_the_notebook_commits(capsys):
    buggy = from_notebook("05_backprop_by_hand.ipynb", "kl_backward_suspect", {"np": np})
    verdict, out = run(ex5.check_kl_backward, buggy, capsys)
    assert not verdict
    assert "- dsigma_p:" in out and "relative error" in out, out
    assert "dmu_q, dsigma_q, dmu_p are right" in out


@pytest.mark.parametrize("old, new, says", [
    ("\"mu_p\": -g * delta / sigma_p**2", "\"mu_p\": g * delta / sigma_p**2", "dmu_p has the wrong sign"),
    ("\"sigma_q\": g * (-1 / sigma_q + sigma_q / sigma_p**2)", "\"sigma_q\": 2 * g * (-1 / sigma_q + sigma_q / sigma_p**2)",
     "dsigma_q is 2 times the right value"),
    ("return {\"mu_q\"", "return {\"mu\"", "expected a dict with keys"),
])
def test_kl_backward_rejects_other_slips(old, new, says, capsys):
    verdict, out = run(ex5.check_kl_backward, variant(sol5.kl_backward, old, new, {}), capsys)
    assert not verdict and says in out, out


def test_vrnn_step_backward_accepts_the_solution_and_the_package(capsys):
    assert run(ex5.check_vrnn_step_backward, sol5.vrnn_step_backward, capsys) == (
        True, "✓ vrnn_step_backward: correct\n")
    assert run(ex5.check_vrnn_step_backward, minivrnn.readable.vrnn_step_backward, capsys)[0]
    verdict, out = run(ex5.check_vrnn_step_backward, stub, capsys)
    assert not verdict and "not done yet" in out
    assert minivrnn.readable.vrnn_step_backward.__module__ == "minivrnn.readable"  # the patch was undone


def test_vrnn_step_backward_finds_the_dropped_mask_the_notebook_commits(capsys):
    original = minivrnn.readable.vrnn_step_backward
    buggy = from_notebook("05_backprop_by_hand.ipynb", "vrnn_step_backward", dict(NS5))
    verdict, out = run(ex5.check_vrnn_step_backward, buggy, capsys)
    assert not verdict
    assert "gradient check, lengths 5, 3, 1:" in out and "no padding" not in out, out  # ragged fails, full passes
    assert "dec right" in out and "every part passes while no sequence is padded" in out
    assert "the gradient of the KL term" in out and "is not multiplied by the mask" in out
    assert minivrnn.readable.vrnn_step_backward is original


@pytest.mark.parametrize("old, new, says", [
    ("ddist = heads.output_logpdf_backward(-dnll * m,", "ddist = heads.output_logpdf_backward(-dnll,",
     "the gradient of the reconstruction term"),
])
def test_vrnn_step_backward_rejects_other_dropped_masks(old, new, says, capsys):
    """(The state's mask, masked_state_backward, cannot be caught this way: a batch is padded at the end, no
    loss term after a sequence's end depends on its state, and the gradient it would carry is 0 anyway.)"""
    wrong = variant(sol5.vrnn_step_backward, old, new, dict(NS5))
    verdict, out = run(ex5.check_vrnn_step_backward, wrong, capsys)
    assert not verdict and "every part passes while no sequence is padded" in out and says in out, out


def test_a_checker_reports_an_exception_instead_of_raising(capsys):
    def broken(*args):
        raise ValueError("shapes do not match")

    for check in (ex4.check_importance_estimate, ex4.check_elbo_terms, ex4.check_sample_posterior,
                  ex5.check_gru_step_backward, ex5.check_kl_backward, ex5.check_vrnn_step_backward):
        verdict, out = run(check, broken, capsys)
        assert not verdict and "raised ValueError: shapes do not match" in out, out
