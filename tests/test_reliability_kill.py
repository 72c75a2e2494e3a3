"""Issue 24, item 6 (kept by tests): a training killed with SIGKILL at seeded moments loses nothing.

Each trial runs ``python -m minivrnn.train`` as a real process (the shipped series, a small model, EPOCHS epochs)
and kills it with SIGKILL (kill -9: no handler runs, no file is closed cleanly) at a moment drawn from a seed. The
moments are placed by what the run has done, not by the clock alone, so that a slower machine moves them with
it: during start-up (before the first checkpoint), a seeded fraction of an epoch after the N-th epoch's line (its
checkpoints and metrics line are written by then), or halfway through writing the N-th checkpoint file (the
process pauses there, so the kill finds a half-written temporary file).

After each kill: ``last.npz`` and ``best.npz``, where present, load with minivrnn's checkpoint loader;
``metrics.jsonl`` lists each epoch once, with no partial line, one epoch short of ``last.npz`` at most (the
line follows the checkpoint); before the first checkpoint nothing half-written remains. Then ``--resume`` (or,
before the first checkpoint, a fresh start) to the same number of epochs must give exactly the parameters of an
uninterrupted run of the same settings (max abs difference 0.0), both checkpoints and the same metrics.
Seven processes (six trials and the uninterrupted run), each loading the Numba kernels from the cache: about
10 s on two idle cores, 25 s on two busy ones; with no cache yet, the first process compiles them (20 s or so).
"""
import glob
import json
import os
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from minivrnn import train as trainmod
from minivrnn.checkpoint import CheckpointError, load_checkpoint

KILL_SEED = 24  # issue 24
EPOCHS = 8
SETTINGS = ["--data", "series", "--model", "vrnn-gauss", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6",
            "--batch-size", "4", "--max-len", "20", "--no-plots", "--seed", "3", "--patience", "100",
            "--epochs", str(EPOCHS)]
TIMEOUT = 120  # seconds a trial may wait for the line it kills after (a hung run fails the test, not CI)

# The training, run as a process; with KILL_AT_SAVE=N, the N-th checkpoint write stops halfway through its
# temporary file, says so on stdout, and waits to be killed.
PAUSING_TRAIN = r"""
import io, os, sys, time
import numpy as np

at, saves, real_savez = int(os.environ.get("KILL_AT_SAVE", "0")), 0, np.savez

def savez(f, **arrays):
    global saves
    saves += 1
    if saves != at:
        return real_savez(f, **arrays)
    buffer = io.BytesIO()
    real_savez(buffer, **arrays)
    f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    f.flush()
    print(f"half-written checkpoint {saves}", flush=True)
    time.sleep(600)

np.savez = savez
from minivrnn.train import main
sys.exit(main())
"""


def trials():
    """(id, how, n, fraction) for each trial, drawn from KILL_SEED."""
    rng = np.random.default_rng(KILL_SEED)
    drawn = [("start-up", 0, float(rng.uniform(0.0, 0.1)))]
    for n in sorted(rng.choice(np.arange(2, EPOCHS), 3, replace=False).tolist()):
        drawn.append(("after-epoch", n, float(rng.uniform(0.0, 1.2))))
    # saves come two per epoch while the validation bound improves (best.npz, then last.npz): one odd N, one even
    odd, even = (int(rng.integers(1, EPOCHS - 1)) * 2 + parity for parity in (1, 0))
    drawn += [("mid-checkpoint", odd, 0.5), ("mid-checkpoint", even, 0.5)]
    return [(f"{how}-{n}" + (f"+{fraction:.2f}" if how != "mid-checkpoint" else ""), how, n, fraction)
            for how, n, fraction in drawn]


class Run:
    """A training process whose stdout lines are read (with the time each arrived) by a thread."""

    def __init__(self, out, env=None):
        self.started = time.monotonic()
        self.stderr = open(os.path.join(os.path.dirname(out), f"{os.path.basename(out)}.stderr"), "w")
        self.proc = subprocess.Popen([sys.executable, "-c", PAUSING_TRAIN, *SETTINGS, "--out", out],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put((time.monotonic(), None))

    def wait_for(self, predicate):
        """The time the first line satisfying ``predicate`` arrived (None if the run ended without one)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            at, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                return None
            self.seen.append((at, line))
            if predicate(line):
                return at

    def kill(self):
        self.proc.kill()  # SIGKILL
        self.proc.wait()
        self.stderr.close()


def epoch_line(n):
    return lambda line: line.startswith(f"  epoch {n}:")


def params_of(path):
    return load_checkpoint(str(path))["params"]


def metrics_of(out):
    """metrics.jsonl's records (every line whole JSON), without the wall-clock seconds."""
    path = os.path.join(out, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    assert text == "" or text.endswith("\n"), f"a partial line: {text[-80:]!r}"
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in text.splitlines()]


def assert_same_params(a, b, what):
    assert sorted(a) == sorted(b), what
    for k in a:
        assert a[k].dtype == b[k].dtype and np.max(np.abs(a[k] - b[k]), initial=0.0) == 0.0, f"{what}: {k}"
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same settings, run to the end as a process: the parameters and metrics a resume must reproduce."""
    out = str(tmp_path_factory.mktemp("uninterrupted") / "run")
    run = Run(out)
    assert run.proc.wait(timeout=TIMEOUT) == 0, open(run.stderr.name).read()
    run.stderr.close()
    return {"last": params_of(os.path.join(out, "last.npz")), "best": params_of(os.path.join(out, "best.npz")),
            "metrics": metrics_of(out)}


TRIALS = trials()


@pytest.mark.parametrize("trial, how, n, fraction", TRIALS, ids=[t[0] for t in TRIALS])
def test_a_training_killed_at_a_seeded_moment_resumes_to_the_uninterrupted_parameters(
        tmp_path, uninterrupted, trial, how, n, fraction):
    out = str(tmp_path / "run")
    run = Run(out, env={"KILL_AT_SAVE": str(n)} if how == "mid-checkpoint" else None)
    try:
        if how == "start-up":  # once the data are loaded: the first epoch (and its Numba kernels) lie ahead
            at = run.wait_for(lambda line: line.startswith("minivrnn: "))
            assert at is not None, run.seen
            time.sleep(fraction * (at - run.started))
        elif how == "after-epoch":  # a fraction of the last epoch's duration after epoch n's line
            before, at = run.wait_for(epoch_line(n - 1)), run.wait_for(epoch_line(n))
            assert before is not None and at is not None, run.seen
            time.sleep(fraction * (at - before))
        else:
            assert run.wait_for(lambda line: line.startswith(f"half-written checkpoint {n}")) is not None, run.seen
    finally:
        run.kill()
    where = f"killed {how} {n} (+{fraction:.2f}); its output: {[line for _, line in run.seen]}"

    # -- what the kill left behind ----------------------------------------------------------------------------
    last, best = os.path.join(out, "last.npz"), os.path.join(out, "best.npz")
    temporary = glob.glob(os.path.join(out, ".checkpoint-*"))
    records = metrics_of(out)
    if how == "mid-checkpoint":  # the half-written file is the temporary one, never the checkpoint's own name
        assert len(temporary) == 1, (temporary, where)
        with pytest.raises(CheckpointError):
            load_checkpoint(temporary[0])
    if os.path.exists(last):
        epoch = load_checkpoint(last)["train_state"]["epoch"]
        assert 1 <= epoch <= EPOCHS, where
        assert [r["epoch"] for r in records] in (list(range(1, epoch + 1)), list(range(1, epoch))), where
        assert records == uninterrupted["metrics"][: len(records)], where
        best_epoch = load_checkpoint(best)["train_state"]["epoch"]  # (saved before last.npz in its epoch)
        assert 1 <= best_epoch <= epoch + 1, where
        code = trainmod.main(["--resume", "--out", out])  # the stored flags, EPOCHS included
    else:  # killed before the first checkpoint: nothing half-written under a checkpoint's or the metrics' name
        assert not os.path.exists(best) and records == [], where
        left = set(os.listdir(out)) if os.path.isdir(out) else set()
        assert left <= {".lock", *map(os.path.basename, temporary)}, (left, where)  # (a fresh start removes these)
        code = trainmod.main([*SETTINGS, "--out", out])  # ... and a fresh start works

    # -- the resumed (or restarted) run is the uninterrupted one --------------------------------------------------
    assert code == 0, where
    assert_same_params(params_of(last), uninterrupted["last"], f"last.npz, {where}")
    assert_same_params(params_of(best), uninterrupted["best"], f"best.npz, {where}")
    assert metrics_of(out) == uninterrupted["metrics"], where
    assert not glob.glob(os.path.join(out, ".checkpoint-*")), where  # the stale temporary file was removed
