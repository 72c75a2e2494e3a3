"""Lesson 7's checker (lessons/exercises/lesson07.py): it accepts the solution (lessons/solutions/lesson07.py),
rejects specific wrong answers with a message that points at the slip, says "not done yet" for an unfinished
function, and never raises."""
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
sys.path.insert(0, str(LESSONS))  # the notebook imports its checker as exercises.lesson07, from lessons/

from exercises import lesson07 as ex7  # noqa: E402
from solutions import lesson07 as sol7  # noqa: E402


def run(check, function, capsys):
    """(returned verdict, printed text) of one checker call; the checker must not raise."""
    verdict = check(function)
    return verdict, capsys.readouterr().out


def variant(function, old, new):
    """A copy of ``function`` (the solution) with ``old`` replaced by ``new`` in its source."""
    source = inspect.getsource(function)
    assert old in source, old
    namespace = {"np": np}
    exec(source.replace(old, new), namespace)
    return namespace[function.__name__]


def stub(*args):
    raise NotImplementedError


def test_the_solution_passes(capsys):
    verdict, out = run(ex7.check_kl_per_dimension, sol7.kl_per_dimension, capsys)
    assert verdict and "✓ kl_per_dimension: correct" in out, out


def test_the_solution_matches_the_package_sum():
    rng = np.random.default_rng(0)
    args = [rng.normal(size=(3, 4)), rng.uniform(0.3, 2, (3, 4)), rng.normal(size=(3, 4)), rng.uniform(0.3, 2, (3, 4))]
    from minivrnn.ops.kl import kl_gaussian_forward
    np.testing.assert_allclose(sol7.kl_per_dimension(*args).sum(-1), kl_gaussian_forward(*args)[0], rtol=1e-12)


def test_a_stub_is_not_done_yet(capsys):
    verdict, out = run(ex7.check_kl_per_dimension, stub, capsys)
    assert verdict is False and "not done yet" in out, out


WRONG = [
    (" - 0.5\n", "\n", "closing -1/2"),
    ("np.log(sigma_p / sigma_q)", "np.log(sigma_p**2 / sigma_q**2)", "not of the variances"),
    ("(sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2)", "(sigma_q + (mu_q - mu_p) ** 2) / (2 * sigma_p)",
     "their squares belong"),
    ("/ (2 * sigma_p**2)", "/ (2 * sigma_q**2)", "divides by the prior's variance"),
    ("np.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2)",
     "np.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_q - mu_p) ** 2) / (2 * sigma_q**2)", "this is KL(p || q)"),
    ("np.log(sigma_p / sigma_q)", "np.log(sigma_q / sigma_p)", "the log term has the wrong sign"),
    ("(sigma_q**2 + (mu_q - mu_p) ** 2)", "(sigma_q**2)", "the gap between the means is missing"),
    ("return np.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5",
     "return (np.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5).sum(-1)",
     "you summed over the latent dimensions"),
    ("- 0.5\n", "- 0.5 + 0.01 * mu_q\n", "KL per dimension: "),
]


@pytest.mark.parametrize("old, new, says", WRONG, ids=[w[2] for w in WRONG])
def test_a_wrong_answer_is_named(old, new, says, capsys):
    wrong = variant(sol7.kl_per_dimension, old, new)
    verdict, out = run(ex7.check_kl_per_dimension, wrong, capsys)
    assert verdict is False and "not yet" in out and says in out, out


def test_a_wrong_answer_says_where(capsys):
    """An unrecognised slip: the first case it fails, the worst entry, and that the sum is off too."""
    wrong = variant(sol7.kl_per_dimension, "- 0.5\n", "- 0.5 + 0.01 * mu_q\n")
    verdict, out = run(ex7.check_kl_per_dimension, wrong, capsys)
    assert "(T, B, Z) = (4, 3, 5)" in out and "the worst, at" in out and "package's KL either" in out, out


def test_a_checker_reports_an_exception_instead_of_raising(capsys):
    def broken(*args):
        raise ValueError("shapes do not match")

    verdict, out = run(ex7.check_kl_per_dimension, broken, capsys)
    assert verdict is False and "raised ValueError: shapes do not match" in out, out


def test_a_non_array_answer_is_reported(capsys):
    verdict, out = run(ex7.check_kl_per_dimension, lambda *a: "kl", capsys)
    assert verdict is False and "expected an array" in out, out
