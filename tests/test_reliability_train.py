"""Training's reliability promises (issue 24, items 3 and 5), in-process on the shipped data, a few steps each:
every way a run can diverge stops with exit 3 and a loadable, all-finite last.npz; one training per run folder;
metrics.jsonl lists each epoch once, whenever the run is killed; stale temporary checkpoints are removed."""
import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minivrnn import init_params
from minivrnn import train as trainmod
from minivrnn.checkpoint import load_checkpoint, save_checkpoint

SERIES = ["--data", "series", "--model", "vrnn-gauss", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6",
          "--batch-size", "4", "--max-len", "20", "--no-plots", "--seed", "3"]  # 3 steps per epoch
PEN = ["--data", "handwriting", "--model", "vrnn-gmm", "--n-mix", "2", "--z-dim", "2", "--h-dim", "6",
       "--feat-dim", "6", "--batch-size", "64", "--max-len", "20", "--no-plots", "--seed", "3"]  # 4 steps


def _error_line(capsys):
    """The single `error:` line on stderr (fails if there is none, or more than one)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def _finite_checkpoint(out):
    """last.npz loads (our loader and plain NumPy) and every parameter in it is finite; returns it."""
    ck = load_checkpoint(os.path.join(out, "last.npz"))
    assert all(np.isfinite(v).all() for v in ck["params"].values())
    with np.load(os.path.join(out, "last.npz")) as f:
        assert all(np.isfinite(f[k]).all() for k in f.files if k.startswith("param/"))
    return ck


# --- item 3: divergence ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, lr, message", [
    (SERIES, "inf", "the update made the parameters non-finite at step 0"),  # the first update overflows
    (PEN, "inf", "the update made the parameters non-finite at step 0"),
    (SERIES, "1e10", "the loss became nan at step 1"),  # finite but huge parameters: the next loss is NaN
    (PEN, "1e10", "the forward pass failed"),  # ... or the pen head's sigma check fails (exit 1 before)
])
def test_a_diverging_learning_rate_stops_with_exit_3_and_the_last_finite_parameters(
        tmp_path, capsys, flags, lr, message):
    out = str(tmp_path / "run")
    assert trainmod.main(flags + ["--epochs", "2", "--lr", lr, "--out", out]) == 3
    line = _error_line(capsys)
    assert message in line and "last.npz" in line, line
    ck = _finite_checkpoint(out)
    if lr == "inf":  # stopped at step 0 with the parameters from before the update: the initial ones
        assert ck["train_state"]["step"] == 0
        initial = init_params(ck["config"], 3, np.float32)
        for k in initial:
            np.testing.assert_array_equal(ck["params"][k], initial[k], err_msg=k)
        assert int(ck["optimizer_arrays"]["adam/step"]) == 0
    else:  # one update applied (finite), the failure at the next forward pass
        assert ck["train_state"]["step"] == 1 and int(ck["optimizer_arrays"]["adam/step"]) == 1
    assert all(np.isfinite(v).all() for v in ck["optimizer_arrays"].values())
    assert not os.path.exists(os.path.join(out, "metrics.jsonl"))  # no epoch was completed


def test_nan_in_a_dataset_file_is_refused_up_front(tmp_path, capsys):
    """The loader rejects a NaN in the data before training starts (exit 2), so a NaN never reaches a batch
    from a file; the in-stream case is the next test."""
    with np.load(os.path.join(os.path.dirname(trainmod.__file__), "..", "data_samples", "series.npz")) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["data"] = arrays["data"].astype(np.float64)
    arrays["data"][5, 0] = np.nan
    path = str(tmp_path / "nan.npz")
    np.savez(path, **arrays)
    out = str(tmp_path / "run")
    assert trainmod.main(SERIES + ["--data", path, "--epochs", "1", "--out", out]) == 2
    line = _error_line(capsys)
    assert path in line and "NaN" in line, line
    assert not os.path.exists(os.path.join(out, "last.npz"))


def test_a_nan_in_the_batch_stream_stops_with_exit_3(tmp_path, capsys, monkeypatch):
    real = trainmod.datalib.iterate_batches

    def poisoned(*args, **kwargs):  # the second batch of the second epoch holds one NaN
        batches = list(real(*args, **kwargs))
        if args[2].bit_generator.seed_seq.entropy == [3, 1]:  # np.random.default_rng([seed, epoch])
            batches[1][0][0, 0, 0] = np.nan
        return batches

    monkeypatch.setattr(trainmod.datalib, "iterate_batches", poisoned)
    out = str(tmp_path / "run")
    assert trainmod.main(SERIES + ["--epochs", "3", "--out", out]) == 3
    line = _error_line(capsys)
    assert "the loss became nan at step 4 (epoch 2)" in line, line
    ck = _finite_checkpoint(out)
    assert ck["train_state"]["step"] == 4 and ck["train_state"]["batch"] == 1  # resumable at the bad batch
    assert [json.loads(r)["epoch"] for r in open(os.path.join(out, "metrics.jsonl"))] == [1]


def _nan_in_adam_v(ck):
    optimizer = dict(ck["optimizer_arrays"])
    optimizer["adam/v/gru.W_ir"] = optimizer["adam/v/gru.W_ir"].copy()
    optimizer["adam/v/gru.W_ir"][0, 0] = np.nan
    return optimizer


def test_a_checkpoint_with_a_nan_adam_state_is_not_resumed(tmp_path, capsys):
    """A last.npz whose adam/v holds NaN, resumed: refused by the loader (exit 2; issue 24, item 2) or, by a
    loader that lets it through, stopped at the first update (exit 3); either way the parameters on disk stay
    the checkpoint's, all finite."""
    out = str(tmp_path / "run")
    assert trainmod.main(SERIES + ["--epochs", "1", "--out", out]) == 0
    path = os.path.join(out, "last.npz")
    ck = load_checkpoint(path)
    save_checkpoint(path, ck["params"], ck["config"], optimizer_arrays=_nan_in_adam_v(ck),
                    train_state=ck["train_state"], data_arrays=ck["data_arrays"])
    capsys.readouterr()
    code = trainmod.main(["--resume", "--out", out, "--epochs", "2"])
    line = _error_line(capsys)
    if code == 2:
        assert path in line and "adam/v/gru.W_ir" in line, line
    else:
        assert code == 3 and "Adam's moments held NaN or Inf before the update" in line, line
    with np.load(path) as f:
        for k, v in ck["params"].items():
            np.testing.assert_array_equal(f[f"param/{k}"], v, err_msg=k)
        assert int(f["adam/step"]) == int(ck["optimizer_arrays"]["adam/step"])


def test_a_nan_adam_state_stops_the_run_with_exit_3_and_last_npz_untouched(tmp_path, capsys, monkeypatch):
    """train's own guard, whatever the loader checks: Adam's v holds a NaN when the run resumes (here put in
    after loading), so the first update makes the parameters NaN: exit 3, and last.npz is left as it was (it
    holds the last finite state; writing back the in-memory one would store the NaN)."""
    out = str(tmp_path / "run")
    assert trainmod.main(SERIES + ["--epochs", "1", "--out", out]) == 0
    path = os.path.join(out, "last.npz")
    before = open(path, "rb").read()
    real_load = trainmod.load_checkpoint

    def load_with_nan(p):
        ck = real_load(p)
        ck["optimizer_arrays"] = _nan_in_adam_v(ck)
        return ck

    monkeypatch.setattr(trainmod, "load_checkpoint", load_with_nan)
    capsys.readouterr()
    assert trainmod.main(["--resume", "--out", out, "--epochs", "2"]) == 3
    line = _error_line(capsys)
    assert "Adam's moments held NaN or Inf before the update" in line and "at step 3 (epoch 2)" in line, line
    assert f"{path} left as it was" in line, line
    assert open(path, "rb").read() == before
    _finite_checkpoint(out)


def test_the_parameter_check_sees_one_bad_entry_among_all_parameters():
    """The per-step check (one flat copy, one isfinite reduction) passes finite parameters and Adam moments, and
    catches a single inf in any one of them. (Its cost is measured, not tested: docs/performance.md.)"""
    from minivrnn import VRNNConfig
    from minivrnn.optim import Adam

    config = VRNNConfig(x_dim=3, z_dim=8, h_dim=32, feat_dim=32, n_layers=1, model="vrnn-gmm", n_mix=5,
                        sigma_min=1e-3, cell="gru", output="pen")
    params = init_params(config, 0, np.float32)
    opt = Adam()
    opt.update(params, {k: np.ones_like(v) for k, v in params.items()})
    check = trainmod.LastFinite(params, opt)
    assert check.check(params, opt) is None
    params["dec.mu.W"][0, 0] = np.inf  # ... and it does see one bad entry among all of them
    assert check.check(params, opt) == "the update made the parameters non-finite"


# --- item 5: one writer per run folder ------------------------------------------------------------------------

def test_a_second_training_into_a_locked_folder_stops_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    # another process holds the folder's lock, as a running training does; then it is killed (-9)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, str(os.getpid()).encode())\n"
         "print('locked', flush=True)\n"
         "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert trainmod.main(SERIES + ["--epochs", "1", "--out", str(out)]) == 2
        line = _error_line(capsys)
        assert line == f"error: --out {out}: another training (pid {holder.pid}) is writing to this folder", line
        assert sorted(os.listdir(out)) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the killed holder's lock: no stale lock
    assert trainmod.main(SERIES + ["--epochs", "1", "--out", str(out)]) == 0


def test_resume_into_a_locked_folder_changes_nothing(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert trainmod.main(SERIES + ["--epochs", "1", "--out", out]) == 0
    before = {name: open(os.path.join(out, name), "rb").read() for name in ("last.npz", "metrics.jsonl")}
    fd = os.open(os.path.join(out, ".lock"), os.O_RDWR)  # held here, in the test, as a training holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        capsys.readouterr()
        assert trainmod.main(["--resume", "--out", out, "--epochs", "2"]) == 2
        assert "another training" in _error_line(capsys)
    finally:
        os.close(fd)
    for name, content in before.items():
        assert open(os.path.join(out, name), "rb").read() == content, name
    # the lock is released at the end of a run: a run into the folder, then a resume, both proceed
    assert trainmod.main(["--resume", "--out", out, "--epochs", "2"]) == 0
    assert trainmod.main(["--resume", "--out", out, "--epochs", "3"]) == 0
    assert [json.loads(r)["epoch"] for r in open(os.path.join(out, "metrics.jsonl"))] == [1, 2, 3]


def test_stale_temporary_checkpoints_are_removed_on_start(tmp_path, monkeypatch):
    # the name save_checkpoint really gives its temporary file, captured from a real save
    names = []
    real_replace = os.replace

    def recording(src, dst):
        names.append(os.path.basename(src))
        return real_replace(src, dst)

    out = str(tmp_path / "run")
    monkeypatch.setattr(os, "replace", recording)
    assert trainmod.main(SERIES + ["--epochs", "1", "--out", out]) == 0
    monkeypatch.setattr(os, "replace", real_replace)
    temp_names = [n for n in names if n != "metrics.jsonl.tmp"]
    assert temp_names and all(n not in os.listdir(out) for n in temp_names)
    orphan = os.path.join(out, temp_names[0])  # as a training killed in the middle of a save leaves it
    with open(orphan, "wb") as f:
        f.write(b"PK\x03\x04 half a checkpoint")
    keep = [os.path.join(out, "notes.txt"), os.path.join(out, ".checkpoint-notes.txt")]
    for path in keep:
        open(path, "w").write("mine")
    assert trainmod.main(["--resume", "--out", out, "--epochs", "2"]) == 0
    assert not os.path.exists(orphan)
    assert all(open(path).read() == "mine" for path in keep)  # only the writer's temporary files go


class Killed(BaseException):
    """Stands for kill -9: nothing in train catches it (no save, no metrics line on the way out)."""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("whole") / "run")
    assert trainmod.main(SERIES + ["--epochs", "3", "--out", out]) == 0
    return load_checkpoint(os.path.join(out, "last.npz"))["params"]


@pytest.mark.parametrize("when", ["during", "after"])
def test_a_kill_around_the_epoch_checkpoint_leaves_each_epoch_once_in_metrics(
        tmp_path, monkeypatch, uninterrupted, when):
    """Killed while epoch 2's last.npz is written ("during": the file is not replaced) or just after it
    ("after": before the epoch's metrics line); --resume then gives epochs 1, 2, 3 once each, and the
    parameters of the uninterrupted run."""
    real_save = trainmod.save_checkpoint
    saves = []

    def killed_at_epoch_2(path, *args, **kwargs):
        if os.path.basename(path) == "last.npz":
            saves.append(path)
            if len(saves) == 2:
                if when == "after":
                    real_save(path, *args, **kwargs)
                raise Killed
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(trainmod, "save_checkpoint", killed_at_epoch_2)
    out = str(tmp_path / "run")
    with pytest.raises(Killed):
        trainmod.main(SERIES + ["--epochs", "3", "--out", out])
    monkeypatch.setattr(trainmod, "save_checkpoint", real_save)
    epochs = lambda: [json.loads(r)["epoch"] for r in open(os.path.join(out, "metrics.jsonl"))]
    assert epochs() == [1]  # the line of epoch 2 is written only after its checkpoint
    assert load_checkpoint(os.path.join(out, "last.npz"))["train_state"]["epoch"] == (2 if when == "after" else 1)
    assert trainmod.main(["--resume", "--out", out]) == 0  # (the lock went with the "killed" run)
    assert epochs() == [1, 2, 3]
    params = load_checkpoint(os.path.join(out, "last.npz"))["params"]
    for k in uninterrupted:
        np.testing.assert_array_equal(params[k], uninterrupted[k], err_msg=k)


# --- a resumed run's stored flags are checked as the command line's are ------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("lr", "x", "train_state/args/lr"),  # not a number
    ("lr", -1.0, "train_state/args/lr"),  # a number --lr would refuse
    ("model", "vrnn-x", "train_state/args/model: expected one of"),  # not a choice
    ("no_plots", "yes", "train_state/args/no_plots: expected true or false"),  # a switch that is not a bool
    ("batch_size", 2.5, "train_state/args/batch_size"),  # not an integer
])
def test_a_hand_edited_stored_flag_is_one_error_line_on_resume(tmp_path, capsys, key, value, message):
    out = str(tmp_path / "run")
    assert trainmod.main(SERIES + ["--epochs", "1", "--out", out]) == 0
    path = os.path.join(out, "last.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    state = json.loads(str(arrays["train_state"]))
    state["args"][key] = value
    arrays["train_state"] = np.array(json.dumps(state))
    np.savez(path, **arrays)
    capsys.readouterr()
    assert trainmod.main(["--resume", "--out", out, "--epochs", "2"]) == 2
    line = _error_line(capsys)
    assert message in line and "last.npz" in line, line


@pytest.mark.parametrize("model", ["rnn-gauss", "rnn-gmm", "vrnn-i-gauss", "vrnn-gauss", "vrnn-gmm"])
@pytest.mark.parametrize("cell, output, n_layers", [("gru", "auto", 1), ("lstm", "auto", 3), ("gru", "pen", 2)])
def test_the_parameter_bound_before_allocation_covers_every_variant(model, cell, output, n_layers):
    """train refuses sizes that cannot fit from this bound, before init_params allocates: it must never be
    below the real count (or a model that fits could be refused)."""
    from minivrnn.model import VRNNConfig, init_params

    config = VRNNConfig(x_dim=3 if output == "pen" else 7, z_dim=5, h_dim=11, feat_dim=13, n_mix=4, model=model,
                        cell=cell, output=output, n_layers=n_layers)
    count = sum(v.size for v in init_params(config).values())
    assert count <= trainmod.parameter_count_bound(config) <= 4 * count  # (loose only by small factors)


def test_paper_sized_models_fit_and_absurd_ones_are_refused_in_one_line():
    from minivrnn.model import VRNNConfig

    paper = VRNNConfig(x_dim=200, z_dim=64, h_dim=2000, feat_dim=600, model="vrnn-gmm", n_mix=20)
    trainmod.check_model_fits(paper, np.float32, memory=16 * 2**30)  # a laptop trains it
    with pytest.raises(trainmod.TrainError, match=r"--h-dim 2000000.*more than half of the 16.0 GiB"):
        trainmod.check_model_fits(VRNNConfig(x_dim=200, z_dim=64, h_dim=2_000_000, feat_dim=600),
                                  np.float32, memory=16 * 2**30)
