"""Run the lessons and store their outputs in the notebooks: ``python lessons/execute.py [NOTEBOOK ...]``.

Each notebook runs top to bottom in a fresh ``python3`` kernel, from inside lessons/, at its default settings
(not the test suite's ``MINIVRNN_LESSON_SMALL=1``), and is written back with its outputs (numbers, PNG
plots), so that the repository's page shows what a reader will see. A notebook with a failing cell is not
written: the error is printed and the exit code is 1. Without arguments, every lesson is run.

Needs the lessons' extra: ``pip install -e ".[lessons]"`` (Jupyter, which brings nbclient and ipykernel).
"""
import argparse
import os
import sys
import time
from pathlib import Path

LESSONS = Path(__file__).resolve().parent
CELL_TIMEOUT = 1800  # seconds for one cell at the default settings (a cold Numba cache compiles first)


def notebooks(names):
    if not names:
        return sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    paths = [Path(n) if Path(n).exists() else LESSONS / n for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"error: no such notebook: {', '.join(missing)}")
    return paths


def execute(path):
    """Run one notebook; return (seconds, stored bytes). Raises nbclient's CellExecutionError on a failure."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    env = os.environ.pop("MINIVRNN_LESSON_SMALL", None)  # the kernel inherits the environment: full settings
    start = time.time()
    try:
        nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": str(LESSONS)}}).execute()
    finally:
        if env is not None:
            os.environ["MINIVRNN_LESSON_SMALL"] = env
    seconds = time.time() - start
    notebook.metadata.pop("widgets", None)
    tmp = path.with_name(f".{path.name}.tmp")
    nbformat.write(notebook, tmp)
    os.replace(tmp, path)  # only a notebook that ran to the end replaces the committed one
    return seconds, path.stat().st_size


def main(argv=None):
    p = argparse.ArgumentParser(prog="python lessons/execute.py", description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="notebooks to run [default: every lesson]")
    args = p.parse_args(argv)
    try:
        import nbclient  # noqa: F401
    except ImportError:
        print('error: nbclient is missing: pip install -e ".[lessons]"', file=sys.stderr)
        return 2
    failed = False
    for path in notebooks(args.notebooks):
        print(f"{path.name}: running ...", flush=True)
        try:
            seconds, size = execute(path)
        except Exception as e:  # a failing cell: report it, keep the committed notebook, go on with the others
            print(f"error: {path.name}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}", file=sys.stderr)
            failed = True
            continue
        print(f"{path.name}: {seconds:.0f} s, {size / 1024:.0f} kB stored", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
