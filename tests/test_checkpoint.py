"""Checkpoints are checked as strictly as datasets on load (issue 24, item 2): every corrupted entry is refused
with one line naming the file and the entry, by load_checkpoint and through the sample and evaluate commands."""
import json
import zipfile

import numpy as np
import pytest

from minivrnn import VRNNConfig, init_params
from minivrnn import evaluate as evaluatemod
from minivrnn import sample as samplemod
from minivrnn import train as trainmod
from minivrnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

CONFIG = VRNNConfig(x_dim=1, z_dim=2, h_dim=4, feat_dim=4, model="vrnn-gauss")  # the shipped series has D = 1
PEN = VRNNConfig(x_dim=3, z_dim=2, h_dim=4, feat_dim=4, model="vrnn-gmm", n_mix=2, output="pen")
STATE = {"epoch": 2, "batch": 0, "step": 7, "best": 12.5, "bad_epochs": 0, "history": [{"epoch": 1}],
         "sums": [0.0, 0.0, 0.0, 0, 0], "args": {"data": "series", "lr": 0.01, "tiny": False},
         "data": {"source": "series", "frame_size": 200, "seed": 0, "heldout": "utterance"}}


def save_good(path, config=CONFIG, kind="series"):
    """A complete checkpoint as train.py writes one: parameters, Adam after 7 steps, training state, data."""
    params = init_params(config, 0, np.float32)
    adam = {"adam/step": np.array(7)}
    for name, value in params.items():
        adam[f"adam/m/{name}"] = np.full_like(value, 0.01)
        adam[f"adam/v/{name}"] = np.full_like(value, 1e-4)
    D = config.x_dim
    data = {"mean": np.zeros(D), "std": np.full(D, 2.0), "scaled": np.ones(D, dtype=bool), "kind": np.array(kind),
            "frame_size": np.array(0), "sample_rate": np.array(0)}
    save_checkpoint(path, params, config, optimizer_arrays=adam, train_state=STATE, data_arrays=data)
    return str(path)


def _json(arrays, key, change):
    value = json.loads(str(arrays[key]))
    change(value)
    arrays[key] = np.array(json.dumps(value))


def _set(key, value):
    return lambda a: a.__setitem__(key, value)


def _cast(key, dtype):
    return lambda a: a.__setitem__(key, a[key].astype(dtype))


def _nan(key):
    def change(a):
        a[key] = a[key].copy()
        a[key].flat[0] = np.nan
    return change


def _drop(key):
    return lambda a: a.pop(key)


def _config(**fields):
    return lambda a: _json(a, "config", lambda c: c.update(fields))


def _state(change):
    return lambda a: _json(a, "train_state", change)


W = "param/enc.mu.W"
CASES = {  # name: (how to corrupt the arrays of a good checkpoint, the entry the message names, a word in it)
    "param int32": (_cast(W, np.int32), W, "int32"),
    "param bool": (_cast(W, bool), W, "bool"),
    "param complex64": (_cast(W, np.complex64), W, "complex64"),
    "param strings": (_cast(W, str), W, "<U"),
    "param float16": (_cast(W, np.float16), W, "float16"),
    "param NaN": (_nan(W), W, "NaN"),
    "param wrong shape": (lambda a: a.__setitem__(W, np.zeros((3, 3), np.float32)), W, "shape"),
    "param missing": (_drop(W), W, "missing"),
    "param unknown": (_set("param/enc.extra.W", np.zeros(2, np.float32)), "param/enc.extra.W", "not a parameter"),
    "param mixed dtypes": (_cast(W, np.float64), W, "one dtype"),
    "h_dim string": (_config(h_dim="32"), "h_dim", "'32'"),
    "h_dim float": (_config(h_dim=32.5), "h_dim", "32.5"),
    "h_dim bool": (_config(h_dim=True), "h_dim", "True"),
    "h_dim huge": (_config(h_dim=10**9), "h_dim", "gru.W_hr"),
    "z_dim zero": (_config(z_dim=0), "z_dim", "positive integer"),
    "sigma_min NaN": (_config(sigma_min=float("nan")), "sigma_min", "finite positive"),
    "sigma_min string": (_config(sigma_min="0.001"), "sigma_min", "'0.001'"),
    "cell unknown": (_config(cell="rnn"), "cell", "'rnn'"),
    "config unknown field": (_config(depth=3), "config", "'depth'"),
    "config not JSON": (_set("config", np.array("{h_dim: 4")), "config", "JSON"),
    "config missing": (_drop("config"), "config", "missing"),
    "config as numbers": (_set("config", np.arange(3)), "config", "JSON string"),
    "train_state a list": (_set("train_state", np.array("[1, 2]")), "train_state", "list"),
    "train_state step string": (_state(lambda s: s.update(step="seven")), "train_state/step", "'seven'"),
    "train_state epoch float": (_state(lambda s: s.update(epoch=2.5)), "train_state/epoch", "2.5"),
    "train_state history dict": (_state(lambda s: s.update(history={})), "train_state/history", "list"),
    "frame_size 0": (_state(lambda s: s["data"].update(frame_size=0)), "train_state/data/frame_size", "0"),
    "heldout unknown": (_state(lambda s: s["data"].update(heldout="x")), "train_state/data/heldout", "'x'"),
    "data source a number": (_state(lambda s: s["data"].update(source=3)), "train_state/data/source", "3"),
    "std NaN": (_nan("data/std"), "data/std", "NaN"),
    "std zero": (_set("data/std", np.zeros(1)), "data/std", "> 0"),
    "std inf": (_set("data/std", np.array([np.inf])), "data/std", "Inf"),
    "std missing": (_drop("data/std"), "data/std", "missing"),
    "mean missing": (_drop("data/mean"), "data/mean", "missing"),
    "mean wrong length": (_set("data/mean", np.zeros(4)), "data/mean", "(4,)"),
    "scaled not bool": (_set("data/scaled", np.ones(1)), "data/scaled", "float64"),
    "kind handwriting for a gauss model": (_set("data/kind", np.array("handwriting")), "data/kind", "pen"),
    "kind unknown": (_set("data/kind", np.array("video")), "data/kind", "'video'"),
    "adam m missing": (_drop("adam/m/" + W[6:]), "adam/m/" + W[6:], "missing"),
    "adam v missing": (_drop("adam/v/gru.W_hr"), "adam/v/gru.W_hr", "missing"),
    "adam m wrong shape": (_set("adam/m/" + W[6:], np.zeros((2, 2), np.float32)), "adam/m/" + W[6:], "shape"),
    "adam v NaN": (_nan("adam/v/" + W[6:]), "adam/v/" + W[6:], "NaN"),
    "adam v negative": (_set("adam/v/" + W[6:], -np.ones((4, 2), np.float32)), "adam/v/" + W[6:], "negative"),
    "adam m int": (_cast("adam/m/" + W[6:], np.int64), "adam/m/" + W[6:], "int64"),
    "adam step string": (_set("adam/step", np.array("seven")), "adam/step", "seven"),
    "adam step float": (_set("adam/step", np.array(7.5)), "adam/step", "7.5"),
    "adam step missing": (_drop("adam/step"), "adam/step", "missing"),
    "adam unknown moment": (_set("adam/m/nope", np.zeros(2, np.float32)), "adam/m/nope", "not a moment"),
}


def corrupt(tmp_path, change, name="bad.npz"):
    """A good checkpoint with one entry changed, rewritten with plain NumPy."""
    good = save_good(tmp_path / "good.npz")
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def assert_one_error_line(capsys, *words):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err and len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_corrupted_entry_is_refused_with_one_line_naming_it(tmp_path, capsys, case):
    change, entry, word = CASES[case]
    path = corrupt(tmp_path, change)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and entry in message and word in message, message
    assert "\n" not in message
    out = tmp_path / "samples"
    assert samplemod.main([path, "--steps", "3", "--n", "1", "--out", str(out)]) == 2
    assert_one_error_line(capsys, path, entry)
    assert not out.exists()  # nothing written from a bad checkpoint
    assert evaluatemod.main([path, "--samples", "2"]) == 2
    assert_one_error_line(capsys, path, entry)


def test_the_good_checkpoint_loads_whole(tmp_path):
    """The control for the cases above: the uncorrupted checkpoint passes every check, arrays unchanged."""
    path = save_good(tmp_path / "good.npz")
    ck = load_checkpoint(path)
    params = init_params(CONFIG, 0, np.float32)
    assert ck["config"] == CONFIG and ck["train_state"] == STATE
    assert set(ck["params"]) == set(params)
    assert all(np.array_equal(ck["params"][k], v) and ck["params"][k].dtype == np.float32 for k, v in params.items())
    assert int(ck["optimizer_arrays"]["adam/step"]) == 7 and len(ck["optimizer_arrays"]) == 1 + 2 * len(params)
    assert np.array_equal(ck["data_arrays"]["std"], [2.0]) and str(ck["data_arrays"]["kind"]) == "series"


def test_a_checkpoint_without_optimizer_training_or_data_state_still_loads(tmp_path):
    """Those sections are optional (a checkpoint saved before the first step, or by hand); only what is
    present is checked."""
    path = str(tmp_path / "bare.npz")
    save_checkpoint(path, init_params(CONFIG, 0, np.float64), CONFIG, optimizer_arrays={"adam/step": np.array(0)})
    ck = load_checkpoint(path)
    assert ck["train_state"] == {} and ck["data_arrays"] == {} and list(ck["optimizer_arrays"]) == ["adam/step"]


def test_an_archive_member_that_is_not_npy_is_refused(tmp_path, capsys):
    good = save_good(tmp_path / "good.npz")
    path = str(tmp_path / "raw.npz")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            if item.filename == W + ".npy":
                dst.writestr(W, b"raw bytes, not an .npy")  # np.load hands such a member over as bytes
            else:
                dst.writestr(item, src.read(item))
    with pytest.raises(CheckpointError, match=f"{W}: not an .npy array"):
        load_checkpoint(path)
    assert samplemod.main([path, "--out", str(tmp_path / "s")]) == 2
    assert_one_error_line(capsys, path, W)


def test_evaluate_needs_the_data_source_when_the_checkpoint_does_not_name_it(tmp_path, capsys):
    path = corrupt(tmp_path, _state(lambda s: s.pop("data")))
    assert load_checkpoint(path)["train_state"].get("data") is None  # a legal checkpoint ...
    assert evaluatemod.main([path, "--samples", "2"]) == 2  # ... that evaluate cannot place
    assert "--data" in assert_one_error_line(capsys, path, "train_state/data/source")
    assert evaluatemod.main([path, "--samples", "2", "--data", "series"]) == 0  # given --data, it runs
    capsys.readouterr()


def test_a_pen_model_refuses_series_data(tmp_path, capsys):
    ck = save_good(tmp_path / "pen.npz", PEN, kind="handwriting")
    data = tmp_path / "three.npz"
    rows = np.random.default_rng(0).normal(size=(300, 3))
    np.savez(data, data=rows, offsets=np.arange(0, 301, 30), kind=np.array("series"))
    assert evaluatemod.main([ck, "--samples", "2", "--data", str(data)]) == 2
    assert_one_error_line(capsys, str(data), "series", "pen")


def test_resume_from_a_checkpoint_with_a_missing_adam_moment_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    corrupt(run, _drop("adam/m/" + W[6:]), name="last.npz")
    assert trainmod.main(["--resume", "--out", str(run)]) == 2
    assert_one_error_line(capsys, str(run / "last.npz"), "adam/m/" + W[6:], "missing")


@pytest.mark.parametrize("module", [samplemod, evaluatemod], ids=["sample", "evaluate"])
def test_a_negative_seed_is_refused_by_argparse(tmp_path, capsys, module):
    path = save_good(tmp_path / "good.npz")
    with pytest.raises(SystemExit) as e:
        module.main([path, "--seed", "-1"])
    assert e.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--seed" in errors[0] and ">= 0" in errors[0], errors


def test_sample_refuses_a_size_that_cannot_fit_in_memory(tmp_path, capsys):
    path = save_good(tmp_path / "good.npz")
    out = tmp_path / "huge"
    assert samplemod.main([path, "--n", "1000000000", "--out", str(out)]) == 2
    assert "GiB" in assert_one_error_line(capsys, "--n 1000000000")
    assert not out.exists()


def test_sample_writes_finite_samples_in_data_units_from_a_good_checkpoint(tmp_path, capsys):
    path = save_good(tmp_path / "good.npz")
    assert samplemod.main([path, "--steps", "5", "--n", "2", "--out", str(tmp_path / "s")]) == 0
    xs = np.load(tmp_path / "s" / "samples.npy")
    assert xs.shape == (5, 2, 1) and np.all(np.isfinite(xs))


@pytest.mark.parametrize("field, value", [("x_dim", "3"), ("z_dim", 2.0), ("h_dim", 32.5), ("feat_dim", True),
                                          ("n_layers", 0), ("n_mix", None), ("sigma_min", float("inf")),
                                          ("sigma_min", 0.0), ("sigma_min", "1e-3"), ("sigma_min", False),
                                          ("model", ["vrnn-gauss"]), ("output", None)])
def test_vrnn_config_refuses_a_field_of_the_wrong_type_or_range(field, value):
    fields = dict(x_dim=3, z_dim=2, h_dim=4, feat_dim=4)
    fields[field] = value
    with pytest.raises(ValueError) as e:
        VRNNConfig(**fields)
    assert str(e.value).startswith(f"{field}: ") and "\n" not in str(e.value)


def test_vrnn_config_takes_numpy_integers_and_an_integer_sigma_min():
    config = VRNNConfig(x_dim=np.int64(3), z_dim=2, h_dim=np.int32(4), feat_dim=4, sigma_min=1)
    assert config.h_dim == 4 and config.sigma_min == 1
