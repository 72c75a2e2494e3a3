"""A full disk while ``sample`` or ``evaluate`` writes its output ends with one ``error:`` line naming the output
file and the system's reason (exit 2, no traceback), and leaves an earlier good output byte-for-byte intact
with no temporary file behind."""
import errno
import os

import numpy as np
import pytest

from minivrnn import evaluate as evaluatemod
from minivrnn import sample as samplemod
from minivrnn import train as trainmod

SMALL = ["--data", "series", "--model", "vrnn-gauss", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6",
         "--batch-size", "4", "--max-len", "20", "--no-plots", "--seed", "3", "--epochs", "1"]
FULL = "No space left on device"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("reliability") / "run"
    assert trainmod.main(SMALL + ["--out", str(run)]) == 0
    return str(run / "best.npz")


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, FULL)


class _FillingFile:
    """A real file whose writes put a few bytes on disk, then fail as a full disk does."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[:7])
        self._f.flush()
        raise OSError(errno.ENOSPC, FULL)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _one_error(capsys, name):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert FULL in lines[0] and name in lines[0], err
    return lines[0]


def _no_temp_files(folder):
    assert not [n for n in os.listdir(folder) if n.startswith(".tmp-") or n.startswith(".plot-")]


def _good_samples(checkpoint, out, capsys):
    assert samplemod.main([checkpoint, "--steps", "5", "--n", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    return (out / "samples.npy").read_bytes()


def test_sample_full_disk_while_writing_names_the_file_and_keeps_the_earlier_one(checkpoint, tmp_path, monkeypatch,
                                                                                  capsys):
    out = tmp_path / "out"
    before = _good_samples(checkpoint, out, capsys)
    monkeypatch.setattr(samplemod, "_Writer", _FillingFile)
    code = samplemod.main([checkpoint, "--steps", "50", "--n", "3", "--seed", "1", "--out", str(out)])
    assert code == 2
    line = _one_error(capsys, "samples.npy")
    assert "requested" not in line
    assert (out / "samples.npy").read_bytes() == before
    _no_temp_files(out)


def test_sample_full_disk_from_numpy_names_the_file(checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    before = _good_samples(checkpoint, out, capsys)
    monkeypatch.setattr(np.lib.format, "write_array", _full_disk)
    assert samplemod.main([checkpoint, "--steps", "5", "--n", "2", "--seed", "1", "--out", str(out)]) == 2
    _one_error(capsys, "samples.npy")
    assert (out / "samples.npy").read_bytes() == before
    _no_temp_files(out)


def test_sample_failed_rename_keeps_the_earlier_file(checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    before = _good_samples(checkpoint, out, capsys)
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith("samples.npy"):
            _full_disk()
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    assert samplemod.main([checkpoint, "--steps", "5", "--n", "2", "--seed", "1", "--out", str(out)]) == 2
    _one_error(capsys, "samples.npy")
    assert (out / "samples.npy").read_bytes() == before
    _no_temp_files(out)


def test_sample_full_disk_on_the_plot_names_the_plot(checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _good_samples(checkpoint, out, capsys)
    png = (out / "generated.png").read_bytes()
    from minivrnn import plots

    monkeypatch.setattr(plots, "_draw", _full_disk)
    assert samplemod.main([checkpoint, "--steps", "5", "--n", "2", "--seed", "1", "--out", str(out)]) == 2
    _one_error(capsys, "generated.png")
    assert (out / "generated.png").read_bytes() == png
    _no_temp_files(out)


def test_atomic_file_keeps_the_earlier_wav_on_failure(tmp_path):
    from minivrnn.data import write_wav

    wav = tmp_path / "sample-0.wav"
    with samplemod.atomic_file(str(wav), suffix=".wav") as tmp:
        write_wav(tmp, np.zeros(100), 16000)
    before = wav.read_bytes()
    with pytest.raises(OSError) as info:
        with samplemod.atomic_file(str(wav), suffix=".wav") as tmp:
            write_wav(tmp, np.ones(50) * 0.5, 16000)
            _full_disk()
    assert info.value.filename == str(wav) and info.value.strerror == FULL
    assert wav.read_bytes() == before
    assert os.listdir(tmp_path) == ["sample-0.wav"]


def _evaluate(checkpoint, capsys, *extra):
    code = evaluatemod.main([checkpoint, "--samples", "2", "--overwrite", *extra])  # (the tests share a CSV)
    return code


def test_evaluate_full_disk_names_the_csv_and_keeps_the_earlier_one(checkpoint, tmp_path, monkeypatch, capsys):
    assert _evaluate(checkpoint, capsys) == 0
    capsys.readouterr()
    csv_path = os.path.splitext(checkpoint)[0] + "-test-S2-seed0.csv"
    before = open(csv_path, "rb").read()
    assert before
    real_open = open
    monkeypatch.setattr(evaluatemod, "open", lambda *a, **k: _FillingFile(real_open(*a, **k)), raising=False)
    assert _evaluate(checkpoint, capsys) == 2
    line = _one_error(capsys, os.path.basename(csv_path))
    assert "best.npz" not in line.replace(os.path.basename(csv_path), "")
    assert open(csv_path, "rb").read() == before
    _no_temp_files(os.path.dirname(csv_path))


def test_evaluate_failed_rename_keeps_the_earlier_csv(checkpoint, tmp_path, monkeypatch, capsys):
    assert _evaluate(checkpoint, capsys) == 0
    capsys.readouterr()
    csv_path = os.path.splitext(checkpoint)[0] + "-test-S2-seed0.csv"
    before = open(csv_path, "rb").read()
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith(".csv"):
            _full_disk()
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    assert _evaluate(checkpoint, capsys) == 2
    _one_error(capsys, os.path.basename(csv_path))
    assert open(csv_path, "rb").read() == before
    _no_temp_files(os.path.dirname(csv_path))


def test_evaluate_full_disk_on_first_run_leaves_no_csv(tmp_path, checkpoint, monkeypatch, capsys):
    import shutil

    ck = tmp_path / "copy.npz"
    shutil.copy(checkpoint, ck)
    real_open = open
    monkeypatch.setattr(evaluatemod, "open", lambda *a, **k: _FillingFile(real_open(*a, **k)), raising=False)
    assert _evaluate(str(ck), capsys) == 2
    _one_error(capsys, "copy-test-S2-seed0.csv")
    assert os.listdir(tmp_path) == ["copy.npz"]
