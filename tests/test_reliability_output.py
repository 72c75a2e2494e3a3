"""Issue 24: operating-system errors on train's output folder end with one line and exit code 2, and lose nothing.

Real failures where this machine can make them (a path under a file, an existing file as --out, a read-only
folder when not running as root); every write site also gets a simulated full disk (ENOSPC) and read-only
file system (EROFS): the checkpoints, the metrics line, the plots, the lock file. Each time the checkpoint of
an earlier good epoch must still load, and a later ``--resume`` (with the fault gone) must finish the run.
"""
import builtins
import errno
import glob
import json
import os
import stat

import numpy as np
import pytest
from matplotlib.figure import Figure

from minivrnn import train as trainmod
from minivrnn.checkpoint import load_checkpoint

SMALL = ["--data", "series", "--model", "vrnn-gauss", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6",
         "--batch-size", "4", "--max-len", "20", "--seed", "3"]

FAULTS = [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EROFS, "Read-only file system")]
FAULT_IDS = ["full-disk", "read-only"]


def _train(out, *extra):
    return trainmod.main(SMALL + ["--out", str(out), *extra])


def _one_error_line(capsys, *names):
    """stderr holds exactly one ``error:`` line, naming each of ``names``, and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def _first_epoch(tmp_path, capsys, *extra):
    """A good run of one epoch; returns its folder and the bytes of what it saved."""
    out = tmp_path / "run"
    assert _train(out, "--epochs", "1", *extra) == 0
    capsys.readouterr()
    saved = {name: (out / name).read_bytes() for name in ("last.npz", "best.npz", "metrics.jsonl")}
    return out, saved


def _assert_first_epoch_intact(out, saved, names=("last.npz", "best.npz", "metrics.jsonl")):
    for name in names:
        assert (out / name).read_bytes() == saved[name], name
    ck = load_checkpoint(str(out / "last.npz"))
    assert ck["train_state"]["epoch"] == 1
    assert all(np.isfinite(v).all() for v in ck["params"].values())
    assert not glob.glob(str(out / ".checkpoint-*")) and not glob.glob(str(out / ".plot-*"))


def _resume_finishes(out, capsys):
    """With the fault gone, --resume completes the run: two epochs, each listed once."""
    assert _train(out, "--epochs", "2", "--resume") == 0
    capsys.readouterr()
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["epoch"] for r in records] == [1, 2]
    assert load_checkpoint(str(out / "last.npz"))["train_state"]["epoch"] == 2


# ---- real failures ----------------------------------------------------------------------------------------

def test_out_under_a_regular_file(tmp_path, capsys):
    (tmp_path / "file").write_text("mine\n")
    out = tmp_path / "file" / "run"
    assert _train(out, "--epochs", "1", "--no-plots") == 2
    line = _one_error_line(capsys, f"--out {out}", "Not a directory")
    assert line.startswith("error: ")
    assert (tmp_path / "file").read_text() == "mine\n"


def test_out_is_an_existing_regular_file(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("mine\n")
    assert _train(out, "--epochs", "1", "--no-plots") == 2
    _one_error_line(capsys, f"--out {out}", "not a folder")
    assert out.read_text() == "mine\n"  # untouched


def test_resume_into_an_existing_regular_file(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("mine\n")
    assert _train(out, "--epochs", "1", "--no-plots", "--resume") == 2
    _one_error_line(capsys, str(out))
    assert out.read_text() == "mine\n"


def test_read_only_folder(tmp_path, capsys):
    out, saved = _first_epoch(tmp_path, capsys, "--no-plots")
    os.chmod(out, 0o500)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as root: a folder with mode 0o500 stays writable (the simulated EROFS "
                        "tests below cover this case)")
        assert _train(out, "--epochs", "2", "--no-plots", "--resume") == 2
        _one_error_line(capsys, f"--out {out}", "Permission denied")
        _assert_first_epoch_intact(out, saved)
    finally:
        os.chmod(out, stat.S_IRWXU)
    _resume_finishes(out, capsys)


# ---- simulated failures at each write site ----------------------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_checkpoint_write_fails(tmp_path, capsys, monkeypatch, fault):
    out, saved = _first_epoch(tmp_path, capsys, "--no-plots")
    real_savez = np.savez

    def savez_fails_halfway(f, **arrays):
        f.write(b"PK\x03\x04 a partial archive")  # the temporary file gets a partial write, then the fault
        raise fault

    monkeypatch.setattr(np, "savez", savez_fails_halfway)
    assert _train(out, "--epochs", "2", "--no-plots", "--resume") == 2
    line = _one_error_line(capsys, f"--out {out}", fault.strerror)
    assert "best.npz" in line or "last.npz" in line
    _assert_first_epoch_intact(out, saved)  # both checkpoints as epoch 1 left them, no temporary file left
    monkeypatch.setattr(np, "savez", real_savez)
    _resume_finishes(out, capsys)


class _FailingAppend:
    """A file opened for appending whose write gets half the text out, then fails."""

    def __init__(self, f, fault):
        self.f, self.fault = f, fault

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def tell(self):
        return self.f.tell()

    def truncate(self, size):
        return self.f.truncate(size)

    def flush(self):
        self.f.flush()

    def write(self, text):
        self.f.write(text[:len(text) // 2])
        self.f.flush()
        raise self.fault


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_metrics_write_fails(tmp_path, capsys, monkeypatch, fault):
    out, saved = _first_epoch(tmp_path, capsys, "--no-plots")

    def open_failing_append(path, mode="r", *args, **kwargs):
        f = builtins.open(path, mode, *args, **kwargs)
        return _FailingAppend(f, fault) if "a" in mode else f

    monkeypatch.setattr(trainmod, "open", open_failing_append, raising=False)
    assert _train(out, "--epochs", "2", "--no-plots", "--resume") == 2
    _one_error_line(capsys, f"--out {out}", "metrics.jsonl", fault.strerror)
    # the metrics file keeps its complete lines and gets no partial one; the checkpoint written just before
    # the line (epoch 2) loads
    assert (out / "metrics.jsonl").read_bytes() == saved["metrics.jsonl"]
    ck = load_checkpoint(str(out / "last.npz"))
    assert ck["train_state"]["epoch"] == 2 and all(np.isfinite(v).all() for v in ck["params"].values())
    monkeypatch.delattr(trainmod, "open")
    _resume_finishes(out, capsys)  # the resume writes the missing line from the checkpoint's history


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_plot_write_fails(tmp_path, capsys, monkeypatch, fault):
    out, saved = _first_epoch(tmp_path, capsys)  # with plots
    png = (out / "training_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    real_savefig = Figure.savefig

    def savefig_fails_halfway(self, fname, *args, **kwargs):
        fname.write(b"\x89PNG partial")
        raise fault

    monkeypatch.setattr(Figure, "savefig", savefig_fails_halfway)
    assert _train(out, "--epochs", "2", "--resume") == 2
    _one_error_line(capsys, f"--out {out}", "training_curve.png", fault.strerror)
    assert (out / "training_curve.png").read_bytes() == png  # the earlier plot, not a partial one
    assert not glob.glob(str(out / ".plot-*"))
    ck = load_checkpoint(str(out / "last.npz"))  # the plots come after the last checkpoint
    assert ck["train_state"]["epoch"] == 2
    monkeypatch.setattr(Figure, "savefig", real_savefig)
    assert _train(out, "--epochs", "2", "--resume") == 0
    assert (out / "training_curve.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_lock_file_fails(tmp_path, capsys, monkeypatch, fault):
    out, saved = _first_epoch(tmp_path, capsys, "--no-plots")
    real_open = os.open

    def open_fails_on_lock(path, *args, **kwargs):
        if os.path.basename(path) == trainmod.LOCK_NAME:
            raise fault
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_fails_on_lock)
    assert _train(out, "--epochs", "2", "--no-plots", "--resume") == 2
    _one_error_line(capsys, f"--out {out}", ".lock", fault.strerror)
    monkeypatch.setattr(os, "open", real_open)
    _assert_first_epoch_intact(out, saved)
    _resume_finishes(out, capsys)


def test_run_folder_creation_fails(tmp_path, capsys, monkeypatch):
    out = tmp_path / "new"

    def makedirs_fails(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "makedirs", makedirs_fails)
    assert _train(out, "--epochs", "1", "--no-plots") == 2
    _one_error_line(capsys, f"--out {out}", "run folder", "Read-only file system")
    assert not out.exists()


# ---- impossible flag values: argparse's one error line, exit code 2 ------------------------------------------

@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--batch-size", "0"), ("--lr", "-1"),
                                        ("--lr", "nan"), ("--clip", "0"), ("--seed", "-1"), ("--out", ""),
                                        ("--patience", "0"), ("--kl-warmup", "-1")])
def test_impossible_flag_values(tmp_path, capsys, flag, value):
    args = SMALL + ["--out", str(tmp_path / "run"), "--no-plots", flag, value]
    with pytest.raises(SystemExit) as exit_info:
        trainmod.main(args)
    assert exit_info.value.code == 2
    _one_error_line(capsys, f"argument {flag}")
    assert not (tmp_path / "run").exists()


def test_temporary_files_of_a_killed_run_are_removed_on_the_next_start(tmp_path, capsys):
    out, saved = _first_epoch(tmp_path, capsys, "--no-plots")
    stale = [out / ".checkpoint-killed.npz", out / ".plot-killed.png", out / ".plot-killed.wav"]
    for path in stale:
        path.write_bytes(b"partial")
    _resume_finishes(out, capsys)
    assert not any(path.exists() for path in stale)
