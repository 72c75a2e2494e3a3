"""The lessons: every notebook in lessons/ runs top to bottom, together they teach eqs. (1)-(10) (each written
out with its number), and the committed copies carry their outputs (from ``python lessons/execute.py``), so
that a reader sees the numbers and plots without running anything.

Each notebook is executed with nbclient in a fresh ``python3`` kernel, from inside lessons/, with
``MINIVRNN_LESSON_SMALL=1`` (the notebooks then pick tiny sizes and finish in seconds), so a lesson broken by
a change to the package fails here.
"""
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds for any one cell (a cold Numba cache compiles the kernels on first use)


def _read(path):
    return nbformat.read(path, as_version=4)


def test_the_lessons_exist():
    assert len(NOTEBOOKS) >= 6, f"expected the six lessons in {LESSONS}, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                    reason="the lessons train models: too slow with Numba's JIT disabled")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.setenv("MINIVRNN_LESSON_SMALL", "1")  # the kernel inherits this environment
    notebook = _read(path)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    client.execute()  # raises CellExecutionError, naming the cell and the traceback, if any cell fails


def _markdown():
    return "\n".join(cell.source for path in NOTEBOOKS for cell in _read(path).cells
                     if cell.cell_type == "markdown")


def test_every_equation_is_taught():
    """The concatenated markdown of all lessons mentions each equation number, written "(N)"."""
    markdown = _markdown()
    missing = [n for n in range(1, 11) if not re.search(rf"\({n}\)", markdown)]
    assert not missing, f"no lesson's markdown mentions equation(s) {missing} as '(N)'"


def test_every_equation_is_displayed_with_its_number():
    """Each of eqs. (1)-(10) is written out in some lesson as a displayed formula $$ ... (N) $$ tagged with its
    number, not only cited in the text."""
    tags = {int(m.group(1)) for block in re.findall(r"\$\$(.*?)\$\$", _markdown(), flags=re.S)
            for m in [re.search(r"\((\d+)\)\s*$", block.strip())] if m}
    missing = sorted(set(range(1, 11)) - tags)
    assert not missing, f"no lesson displays equation(s) {missing} as $$ ... (N)$$"


MAX_NOTEBOOK_BYTES = 1_500_000  # PNG figures of sensible sizes fit well within this


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_carries_its_outputs(path):
    """Every code cell was run (by lessons/execute.py) and shows something; none shows an error; figures are
    PNG; the stored notebook stays modest."""
    cells = [c for c in _read(path).cells if c.cell_type == "code"]
    blank = [i for i, c in enumerate(cells) if not c.outputs]
    errors = [i for i, c in enumerate(cells) if any(o.output_type == "error" or "Traceback" in o.get("text", "")
                                                     for o in c.outputs)]
    svg = [i for i, c in enumerate(cells) if any("image/svg+xml" in o.get("data", {}) for o in c.outputs)]
    rerun = f"run python lessons/execute.py {path.name}"
    assert not blank, f"{path.name}: code cells {blank} (counting code cells from 0) have no output; {rerun}"
    assert not errors, f"{path.name}: code cells {errors} show an error"
    assert not svg, f"{path.name}: code cells {svg} store SVG figures; store PNG"
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size:,} bytes stored"
