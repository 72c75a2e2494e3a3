"""minivrnn/reference_kit/README.md's examples run as written: every ```python block that opens with
``# <file>.py`` is written to an empty folder and the folder's tests run under pytest in a fresh process (the
PyTorch model, its adapter, one test per check, the two recipes; the JAX example where JAX is installed), and
the README's command line runs there too. Its sample diagnosis is what the kit really prints."""
import importlib.util
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from minivrnn import reference_kit as kit  # noqa: E402
from tests.reference_kit import twins  # noqa: E402

README = (kit.GOLDEN_DIR.parent / "README.md").read_text()
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny tensors: one thread each (see twins.one_thread)


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def files():
    """{file name: source} of the python blocks that name their file on their first line."""
    out = {}
    for block in blocks("python"):
        first = block.splitlines()[0]
        match = re.fullmatch(r"# (\w+\.py)(:.*)?", first)
        if match:
            out[match.group(1)] = block
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("readme")
    for name, source in files().items():
        (path / name).write_text(source)
    return path


def test_the_readme_has_the_complete_examples():
    assert {"my_vrnn.py", "vrnn_adapter.py", "test_my_vrnn.py", "test_recipe_noise.py", "test_recipe_no_mask.py",
            "jax_vrnn.py", "test_jax_vrnn.py"} <= set(files())


def test_the_examples_pass_under_pytest(folder):
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"], cwd=folder,
                         capture_output=True, text=True, timeout=900, env=ENV)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    passed = int(re.search(r"(\d+) passed", out).group(1))
    # test_my_vrnn: vrnn-gauss, vrnn-gmm and vrnn-gmm-edges x (loss, padding, sample), 3 densities; 2 recipes
    torch_tests = 3 * 3 + 3 + 2
    if importlib.util.find_spec("jax") is None:
        assert passed == torch_tests and "the JAX example needs JAX" in out, out
    else:
        assert passed == torch_tests + 4, out  # the JAX example: loss, padding and two densities


def test_the_readme_command_line_runs_there(folder):
    lines = [line for block in blocks("bash") for line in block.splitlines()
             if line.startswith("python -m minivrnn.reference_kit check")]
    assert len(lines) == 1
    argv = lines[0].split()[1:]
    run = subprocess.run([sys.executable, *argv], cwd=folder, capture_output=True, text=True, timeout=900, env=ENV)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "12 passed, 0 failed, 6 skipped" in run.stdout  # 3 densities + 3 implemented cases x 3 checks


def test_the_readme_shows_a_diagnosis_the_kit_really_prints():
    """The "Reading a diagnosis" block, each finding's lines joined, is the message for the planted blind
    encoder (tests/test_reference_kit_bugs.py)."""
    block = next(b for b in blocks("text") if b.startswith("vrnn-gauss:"))
    shown = re.sub(r"\n    ", " ", block.strip())  # a finding's continuation lines are indented by 4
    with pytest.raises(kit.CheckFailed) as failed:
        kit.check_loss_against_golden(twins.adapter("enc-blind"), kit.GOLDEN_DIR / "vrnn-gauss.npz")
    assert shown == str(failed.value)
