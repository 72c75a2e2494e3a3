"""The command line: a short run writes everything, resume is exact, faults end cleanly with one line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minivrnn import train as trainmod
from minivrnn.checkpoint import load_checkpoint

SMALL = ["--data", "series", "--model", "vrnn-gauss", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6",
         "--batch-size", "4", "--max-len", "20", "--no-plots", "--seed", "3"]


def _run(tmp_path, name, *extra):
    out = str(tmp_path / name)
    code = trainmod.main(SMALL + ["--out", out, *extra])
    return code, out


def _params(out):
    return load_checkpoint(os.path.join(out, "last.npz"))["params"]


def test_a_short_run_writes_checkpoints_metrics_and_plots(tmp_path):
    out = str(tmp_path / "run")
    code = trainmod.main(SMALL[:-3] + ["--seed", "3", "--epochs", "3", "--out", out])
    assert code == 0
    for name in ("last.npz", "best.npz", "metrics.jsonl", "training_curve.png", "kl_per_step.png",
                 "samples.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["valid_loss"]) for r in records)
    ck = np.load(os.path.join(out, "last.npz"))  # loadable by plain NumPy
    assert "param/gru.W_ir" in ck.files and "config" in ck.files and "adam/step" in ck.files


def test_resume_reaches_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    assert _run(tmp_path, "whole", "--epochs", "3")[0] == 0
    assert _run(tmp_path, "parts", "--epochs", "1")[0] == 0
    assert _run(tmp_path, "parts", "--epochs", "3", "--resume")[0] == 0
    whole, parts = _params(str(tmp_path / "whole")), _params(str(tmp_path / "parts"))
    for k in whole:
        np.testing.assert_array_equal(whole[k], parts[k], err_msg=k)


def test_ctrl_c_saves_and_resume_continues_exactly(tmp_path, monkeypatch):
    assert _run(tmp_path, "whole", "--epochs", "2")[0] == 0
    calls = {"n": 0}
    real_update = trainmod.Adam.update

    def interrupted(self, params, grads):
        calls["n"] += 1
        if calls["n"] == 4:  # in the middle of the second epoch (3 batches per epoch)
            raise KeyboardInterrupt
        real_update(self, params, grads)

    monkeypatch.setattr(trainmod.Adam, "update", interrupted)
    code, out = _run(tmp_path, "cut", "--epochs", "2")
    assert code == 130 and os.path.exists(os.path.join(out, "last.npz"))
    monkeypatch.setattr(trainmod.Adam, "update", real_update)
    assert _run(tmp_path, "cut", "--epochs", "2", "--resume")[0] == 0
    whole, cut = _params(str(tmp_path / "whole")), _params(out)
    for k in whole:
        np.testing.assert_array_equal(whole[k], cut[k], err_msg=k)


def test_nan_loss_stops_with_the_last_good_parameters(tmp_path, monkeypatch, capsys):
    real_forward = trainmod.forward
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        result, cache = real_forward(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            result["loss"] = float("nan")
        return result, cache

    monkeypatch.setattr(trainmod, "forward", poisoned)
    code, out = _run(tmp_path, "nan", "--epochs", "3")
    assert code == 3
    assert "the loss became nan" in capsys.readouterr().err
    params = _params(out)
    assert all(np.all(np.isfinite(v)) for v in params.values())


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minivrnn.train", *args], capture_output=True, text=True,
                          cwd=cwd)


@pytest.mark.parametrize("problem, args, message", [
    ("missing data", ["--data", "/no/such/file.npz"], "/no/such/file.npz"),
    ("missing checkpoint", ["--resume"], "no such checkpoint file"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, problem, args, message):
    r = _cli(*SMALL, "--out", str(tmp_path / "x"), *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_checkpoint_and_wrong_dimension(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.npz").write_bytes(b"this is not a zip file")
    r = _cli(*SMALL, "--out", str(out), "--resume")
    assert r.returncode == 2 and "not a readable minivrnn checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert _run(tmp_path, "hw", "--epochs", "1")[0] == 0  # series: x_dim = 1
    r = _cli(*SMALL, "--data", "handwriting", "--out", str(tmp_path / "hw"), "--resume")
    assert r.returncode == 2 and "x_dim" in r.stderr and "Traceback" not in r.stderr


def test_help_documents_every_flag():
    r = _cli("--help")
    assert r.returncode == 0
    for flag in ("--tiny", "--model", "--data", "--epochs", "--seed", "--out", "--resume", "--h-dim",
                 "--z-dim", "--kl-warmup", "--clip", "--patience"):
        assert flag in r.stdout


def test_sample_and_evaluate_commands(tmp_path):
    code, out = _run(tmp_path, "run", "--epochs", "1")
    assert code == 0
    ck = os.path.join(out, "last.npz")
    r = subprocess.run([sys.executable, "-m", "minivrnn.sample", ck, "--steps", "7", "--n", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    xs = np.load(os.path.join(out, "samples.npy"))
    assert xs.shape == (7, 2, 1) and np.all(np.isfinite(xs))
    r = subprocess.run([sys.executable, "-m", "minivrnn.evaluate", ck, "--samples", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ELBO" in r.stdout and "importance-sampled" in r.stdout
    rows = open(os.path.join(out, "last-test-eval.csv")).read().splitlines()
    assert len(rows) >= 2
    for module in ("minivrnn.sample", "minivrnn.evaluate"):
        r = subprocess.run([sys.executable, "-m", module, str(tmp_path / "missing.npz")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
