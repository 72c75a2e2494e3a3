"""``python -m minivrnn.reference_kit check``: one table of every applicable check, exit 0 when all pass and 1
when one fails (with the diagnosis in the table), 2 and one ``error:`` line for a wrong argument. Run in-process
through main(argv), and once as a real command, against the PyTorch twin and broken copies of it
(tests/reference_kit/twins.py)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

from minivrnn import reference_kit as kit  # noqa: E402
from minivrnn.reference_kit.command import main, select_cases  # noqa: E402
from tests.reference_kit import twins  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TWIN = "tests.reference_kit.twins"
one_torch_thread = pytest.fixture(autouse=True, scope="module")(twins.one_thread)


def table(out):
    """The table's rows by check: (worst error, tolerance, result, the row's first diagnosis line)."""
    rows = {}
    for line in out.splitlines()[2:]:
        if not line.strip():  # the table's end; the counts follow
            break
        if line.startswith(" "):  # a diagnosis running on below its row
            continue
        if line.split()[0] in ("loss", "padding", "chunks", "sample"):  # "loss vrnn-gauss": two words
            check, case, *parts = line.split(maxsplit=5)
            rows[f"{check} {case}"] = tuple(parts)
        else:
            check, *parts = line.split(maxsplit=4)
            rows[check] = tuple(parts)
    return rows


def test_the_twin_passes_every_check(capsys):
    code = main(["check", f"{TWIN}:loss_and_grads", "--sample", f"{TWIN}:sample", "--densities", TWIN,
                 "--cases", "vrnn-gauss,vrnn-gmm-pen"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = table(out)
    expected = ["gaussian_logpdf", "kl_gaussian", "gmm_logpdf", "pen_logpdf"] + [
        f"{check} {case}" for case in ("vrnn-gauss", "vrnn-gmm-pen") for check in ("loss", "padding", "chunks", "sample")]
    assert list(rows) == expected  # the densities, then every check per case, chunks because it takes state0
    assert all(r[2] == "pass" and r[1] == "1e-09" and float(r[0]) < 1e-9 for r in rows.values()), out
    assert out.rstrip().endswith("12 passed, 0 failed, 0 skipped")


def test_a_broken_copy_fails_with_the_diagnosis_in_the_table(capsys):
    code = main(["check", f"{TWIN}:state_moves_on_padding", "--cases", "vrnn-gauss"])
    out = capsys.readouterr().out
    assert code == 1
    rows = table(out)
    assert rows["loss vrnn-gauss"][2] == "FAIL" and rows["padding vrnn-gauss"][2] == "FAIL"
    assert rows["chunks vrnn-gauss"][2] == "pass"  # the state is carried right between chunks; padding moves it
    assert float(rows["loss vrnn-gauss"][0]) > 1e-9
    flat = " ".join(out.split())
    assert "comes after a padded step of its own sequence (first: step 2 of sequence 1" in flat
    assert "a padded step moves the state" in flat
    assert out.rstrip().endswith("1 passed, 2 failed, 0 skipped")


def test_float32_takes_one_tolerance_and_leaves_out_the_float64_only_case(capsys):
    assert [p.stem for p in select_cases(None, True)] == [p.stem for p in kit.golden_paths(float32=True)]
    assert set(kit.FLOAT64_ONLY) <= {p.stem for p in select_cases(None, False)}
    code = main(["check", f"{TWIN}:loss_and_grads_float32", "--float32", "--cases", "vrnn-gauss"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert {r[1] for r in table(out).values()} == {"1e-04"}


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Writes a module of the user's into a folder on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name, text):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        return name
    return write


def test_a_variant_you_do_not_implement_is_skipped_and_an_error_of_yours_is_a_failed_row(user_module, capsys):
    name = user_module("partial_vrnn", """
        from tests.reference_kit import twins

        def loss_and_grads(params, config, x, mask, eps):
            if config["cell"] == "lstm":
                raise NotImplementedError("no LSTM here")
            if config["output"] == "pen":
                raise ValueError("pen strokes break me")
            return twins.loss_and_grads(params, config, x, mask, eps)
        """)
    code = main(["check", f"{name}:loss_and_grads", "--cases", "vrnn-gauss-lstm,vrnn-gmm-pen,rnn-gauss"])
    out = capsys.readouterr().out
    rows = table(out)
    assert code == 1
    assert rows["loss vrnn-gauss-lstm"][2] == "skip" and "no LSTM here" in out
    assert "padding vrnn-gauss-lstm" not in rows  # a skipped case's other checks are not run
    assert rows["loss vrnn-gmm-pen"][2] == "FAIL"
    assert "your function raised ValueError: pen strokes break me (at " in out and "partial_vrnn.py:" in out
    assert rows["loss rnn-gauss"][2] == "pass" and rows["padding rnn-gauss"][2] == "pass"
    assert "chunks rnn-gauss" not in rows  # no state0 keyword: no chunked check


@pytest.mark.parametrize("argv, says", [
    ([], "the following arguments are required: command"),
    (["check"], "the following arguments are required: MODULE:LOSS"),
    (["check", "no_such_module_here:f"], "no_such_module_here:f: cannot import no_such_module_here "
                                          "(ModuleNotFoundError"),
    (["check", f"{TWIN}:nope"], f"{TWIN}:nope: {TWIN} has no 'nope'"),
    (["check", f"{TWIN}:BUGS"], "'BUGS' is a dict, not a function"),
    (["check", TWIN], "expected MODULE:NAME"),
    (["check", f"{TWIN}:sample", "--rtol", "0"], "argument --rtol: expected a positive number, got 0"),
    (["check", f"{TWIN}:sample", "--rtol", "tight"], "argument --rtol: expected a number, got 'tight'"),
    (["check", f"{TWIN}:sample", "--float32", "--rtol", "1e-3"], "not allowed with argument --float32"),
    (["check", f"{TWIN}:sample", "--cases", "vrnn-gauss,vrnn-typo"], "unknown: vrnn-typo"),
    (["check", f"{TWIN}:sample", "--cases", ","], "--cases ,: expected names among"),
    (["check", f"{TWIN}:sample", "--densities", "json"], "--densities json: the module defines none of"),
    (["check", f"{TWIN}:sample", "--sample", "no_such_module_here:sample"], "--sample no_such_module_here:sample"),
    (["check", f"{TWIN}:sample", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_a_wrong_argument_is_one_error_line_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_a_module_that_breaks_on_import_is_one_error_line(user_module, capsys):
    name = user_module("broken_on_import", "raise RuntimeError('line one\\nline two')\n")
    assert main(["check", f"{name}:f"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"error: {name}:f: cannot import {name} (RuntimeError: line one line two)"]


def test_the_command_as_a_real_process():
    """python -m minivrnn.reference_kit: exit 1 and the table for a broken copy; exit 2 and one error line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny tensors: one thread each (see twins.one_thread)
    run = lambda *args: subprocess.run([sys.executable, "-m", "minivrnn.reference_kit", "check", *args], cwd=ROOT,
                                       capture_output=True, text=True, timeout=300, env=env)
    broken = run(f"{TWIN}:state_moves_on_padding", "--cases", "rnn-gmm")
    assert broken.returncode == 1, broken.stderr
    assert table(broken.stdout)["padding rnn-gmm"][2] == "FAIL" and broken.stderr == ""
    wrong = run("no_such_module_here:f")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.splitlines() == ["error: no_such_module_here:f: cannot import no_such_module_here "
                                         "(ModuleNotFoundError: No module named 'no_such_module_here')"]
