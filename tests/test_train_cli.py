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


def test_a_short_run_writes_checkpoints_metrics_and_plots(tmp_path, capsys):
    out = str(tmp_path / "run")
    code = trainmod.main(SMALL[:-3] + ["--seed", "3", "--epochs", "3", "--out", out])
    assert code == 0
    epoch_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  epoch ")]
    for name in ("last.npz", "best.npz", "metrics.jsonl", "training_curve.png", "kl_per_step.png",
                 "samples.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["valid_loss"]) for r in records)
    # each epoch's line puts the two per-time-step figures side by side (the per-sequence ones are not
    # comparable: training chunks of at most --max-len steps against whole validation sequences)
    assert len(epoch_lines) == 3
    for line, r in zip(epoch_lines, records):
        assert (f"-ELBO per time step: train {r['train_per_step']:.3f}, validation {r['valid_per_step']:.3f}"
                in line), line
        assert f"per validation sequence {r['valid_loss']:.3f}" in line
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
    code, out = _run(tmp_path, "nan", "--epochs", "3", "--valid-draws", "1")  # call 5: a step of epoch 2
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
    # ... and every option the parser has, each with its own help text.
    for action in trainmod.build_parser()._actions:
        assert action.help, action.dest
        for option in action.option_strings:
            assert option in r.stdout, option


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
    rows = open(os.path.join(out, "last-test-S3-seed0.csv")).read().splitlines()
    assert len(rows) >= 2
    for module in ("minivrnn.sample", "minivrnn.evaluate"):
        r = subprocess.run([sys.executable, "-m", module, str(tmp_path / "missing.npz")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_resume_with_only_out_continues_with_the_flags_the_run_started_with(tmp_path):
    """``--resume --out RUN`` (what the Ctrl-C message says to type) must not fall back to the defaults
    (speech, lr 1e-3, ...): the run's own flags come back from its checkpoint."""
    assert _run(tmp_path, "whole", "--epochs", "3", "--lr", "5e-3")[0] == 0
    assert _run(tmp_path, "parts", "--epochs", "1", "--lr", "5e-3")[0] == 0
    assert trainmod.main(["--resume", "--out", str(tmp_path / "parts"), "--epochs", "3"]) == 0
    whole, parts = _params(str(tmp_path / "whole")), _params(str(tmp_path / "parts"))
    for k in whole:
        np.testing.assert_array_equal(whole[k], parts[k], err_msg=k)


def test_resuming_a_finished_run_changes_nothing_and_still_plots(tmp_path):
    out = str(tmp_path / "done")
    with_plots = [a for a in SMALL if a != "--no-plots"]
    assert trainmod.main(with_plots + ["--epochs", "2", "--out", out]) == 0
    before = _params(out)
    os.remove(os.path.join(out, "kl_per_step.png"))
    assert trainmod.main(["--resume", "--out", out]) == 0  # already at --epochs 2
    after = _params(out)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert os.path.getsize(os.path.join(out, "kl_per_step.png")) > 0
    assert len(open(os.path.join(out, "metrics.jsonl")).read().splitlines()) == 2


def test_real_sigint_saves_a_checkpoint_and_resume_continues_exactly(tmp_path):
    """A real Ctrl-C (SIGINT to the process, at whatever point it lands) leaves a checkpoint from which
    --resume reaches the parameters of an uninterrupted run."""
    import signal
    import time

    out = tmp_path / "cut"
    argv = [*SMALL, "--epochs", "1000", "--patience", "1000", "--out", str(out)]
    # A shell's background job ignores SIGINT and the child would inherit that, so the child first puts
    # back Python's own Ctrl-C handler (as in a terminal), then runs `python -m minivrnn.train ARGV`.
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             f"sys.argv = ['minivrnn.train'] + {argv!r}; runpy.run_module('minivrnn.train', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", start], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    metrics, deadline = out / "metrics.jsonl", time.time() + 120
    while (not metrics.exists() or len(metrics.read_text().splitlines()) < 2) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted: saved"), err
    state = load_checkpoint(str(out / "last.npz"))["train_state"]
    target = state["epoch"] + 2
    assert _run(tmp_path, "whole", "--epochs", str(target), "--patience", "1000")[0] == 0
    assert trainmod.main(["--resume", "--out", str(out), "--epochs", str(target)]) == 0
    whole, cut = _params(str(tmp_path / "whole")), _params(str(out))
    for k in whole:
        np.testing.assert_array_equal(whole[k], cut[k], err_msg=k)


def test_nan_gradient_stops_with_the_last_good_parameters(tmp_path, monkeypatch, capsys):
    """A finite loss whose gradient overflows must not be applied (it would turn every weight into NaN)."""
    real_backward = trainmod.backward
    calls = {"n": 0}

    def poisoned(cache):
        grads = real_backward(cache)
        calls["n"] += 1
        if calls["n"] == 5:
            grads = {k: np.full_like(g, np.nan) for k, g in grads.items()}
        return grads

    monkeypatch.setattr(trainmod, "backward", poisoned)
    code, out = _run(tmp_path, "nan", "--epochs", "3")
    assert code == 3
    assert "the gradient norm became nan" in capsys.readouterr().err
    assert all(np.all(np.isfinite(v)) for v in _params(out).values())


def _recording_forward(monkeypatch):
    weights = []
    real_forward = trainmod.forward

    def recording(*args, kl_weight=1.0, **kwargs):
        weights.append(kl_weight)
        return real_forward(*args, kl_weight=kl_weight, **kwargs)

    monkeypatch.setattr(trainmod, "forward", recording)
    return weights


def test_kl_warmup_raises_the_kl_weight_linearly_to_one(tmp_path, monkeypatch):
    """--kl-warmup W: step s (1, 2, ...) trains with KL weight min(1, s / W), as --help says; 0 is off."""
    weights = _recording_forward(monkeypatch)
    monkeypatch.setattr(trainmod, "evaluate_bound", lambda *a: (1.0, 1.0, np.zeros(3)))  # training steps only
    assert _run(tmp_path, "warm", "--epochs", "3", "--kl-warmup", "5")[0] == 0
    assert len(weights) == 9  # 3 batches per epoch
    np.testing.assert_allclose(weights, [0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1, 1], rtol=1e-12)
    weights.clear()
    assert _run(tmp_path, "off", "--epochs", "1")[0] == 0
    assert weights == [1.0] * 3


def test_early_stopping_on_the_validation_bound(tmp_path, monkeypatch):
    """--patience 2: stop after two epochs without a better validation bound; best.npz is the best epoch's."""
    scripted = iter([5.0, 4.0, 4.5, 6.0, 1.0, 1.0])
    monkeypatch.setattr(trainmod, "evaluate_bound", lambda *a: (next(scripted), 1.0, np.zeros(3)))
    code, out = _run(tmp_path, "early", "--epochs", "6", "--patience", "2")
    assert code == 0
    records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["valid_loss"] for r in records] == [5.0, 4.0, 4.5, 6.0]
    best = load_checkpoint(os.path.join(out, "best.npz"))["train_state"]
    assert best["epoch"] == 2 and best["best"] == 4.0


def test_the_seed_makes_a_run_reproducible(tmp_path):
    runs = {name: _params(_run(tmp_path, name, "--epochs", "1", "--seed", seed)[1])
            for name, seed in (("a", "5"), ("b", "5"), ("c", "6"))}
    assert all(np.array_equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(np.array_equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of a one-epoch series run (x_dim = 1), and a folder for broken inputs."""
    folder = tmp_path_factory.mktemp("faults")
    out = str(folder / "run")
    assert trainmod.main(SMALL + ["--epochs", "1", "--out", out]) == 0
    good = open(os.path.join(out, "last.npz"), "rb").read()
    (folder / "truncated.npz").write_bytes(good[: len(good) // 2])
    (folder / "random.npz").write_bytes(np.random.default_rng(0).bytes(4000))
    rng = np.random.default_rng(1)
    offsets = np.array([0, 100, 200, 300])
    np.savez(folder / "two_dims.npz", data=rng.normal(size=(300, 2)), offsets=offsets, kind=np.array("series"))
    one = rng.normal(size=(300, 1))
    one[150, 0] = np.inf
    np.savez(folder / "inf.npz", data=one, offsets=offsets, kind=np.array("series"))
    np.savez(folder / "empty.npz", data=np.zeros_like(one), offsets=np.array([0, 100, 100, 300]),
             kind=np.array("series"))
    return folder, os.path.join(out, "last.npz")


@pytest.mark.parametrize("module, args, message", [
    ("minivrnn.sample", ["{folder}/truncated.npz"], "not a readable minivrnn checkpoint"),
    ("minivrnn.sample", ["{folder}/random.npz"], "not a readable minivrnn checkpoint"),
    ("minivrnn.evaluate", ["{folder}/truncated.npz"], "not a readable minivrnn checkpoint"),
    ("minivrnn.evaluate", ["{folder}/random.npz"], "not a readable minivrnn checkpoint"),
    ("minivrnn.evaluate", ["{ck}", "--data", "{folder}/two_dims.npz"], "x_dim = 1"),
    ("minivrnn.evaluate", ["{ck}", "--data", "{folder}/inf.npz"], "NaN or Inf"),
    ("minivrnn.evaluate", ["{ck}", "--data", "{folder}/empty.npz"], "empty"),
    ("minivrnn.evaluate", ["{ck}", "--samples", "0"], "--samples"),
    ("minivrnn.train", ["--data", "{folder}/empty.npz", "--out", "{folder}/x"], "empty"),
    ("minivrnn.train", ["--data", "series", "--batch-size", "0", "--out", "{folder}/x"], "--batch-size"),
    ("minivrnn.train", ["--resume", "--out", "{folder}/nothing"], "no such checkpoint file"),
])
def test_faults_are_one_error_line_and_a_nonzero_exit(trained, module, args, message):
    folder, ck = trained
    argv = [a.format(folder=folder, ck=ck) for a in args]
    r = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], r.stderr
