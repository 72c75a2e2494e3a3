"""What evaluate reports (issue 21): the ELBO with its two terms, per sequence and per step, the importance
estimate with its standard error and the weights' effective sample size, one exact column for the RNNs, a
CSV named after its settings that is never replaced silently, and the S-versus-4S check. And the training
side of an honest comparison: a split seed separate from --seed, a validation bound averaged over draws."""
import csv
import os

import numpy as np
import pytest

from minivrnn import data as datalib
from minivrnn import evaluate as evaluatemod
from minivrnn import evaluation
from minivrnn import train as trainmod
from minivrnn import VRNNConfig, init_params
from minivrnn.checkpoint import load_checkpoint, save_checkpoint
from minivrnn.model import forward

SMALL = ["--data", "series", "--z-dim", "2", "--h-dim", "6", "--feat-dim", "6", "--batch-size", "4",
         "--max-len", "20", "--no-plots", "--epochs", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One small trained VRNN and one RNN baseline."""
    root = tmp_path_factory.mktemp("evaluate")
    out = {}
    for model in ("vrnn-gauss", "rnn-gmm"):
        assert trainmod.main(SMALL + ["--model", model, "--out", str(root / model)]) == 0
        out[model] = str(root / model / "best.npz")
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _batch(n=3, T=7, D=2, seed=0):
    rng = np.random.default_rng(seed)
    lengths = [T, T - 2, 3][:n]
    x, mask = datalib.pad_batch([rng.standard_normal((t, D)) for t in lengths])
    return x, mask


def test_the_elbo_is_its_reconstruction_minus_its_kl_and_agrees_with_elbo_and_importance():
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=5, feat_dim=4, model="vrnn-gauss")
    params = init_params(config, 1, np.float64)
    x, mask = _batch()
    terms = evaluation.evaluate_terms(params, config, x, mask, 6, np.random.default_rng(3))
    np.testing.assert_allclose(terms["elbo"], terms["rec"] - terms["kl"], rtol=1e-12)
    assert np.all(terms["kl"] > 0)  # q differs from the prior at initialisation
    elbo, estimate = evaluation.elbo_and_importance(params, config, x, mask, 6, np.random.default_rng(3))
    np.testing.assert_allclose(elbo, terms["elbo"], rtol=1e-12)
    np.testing.assert_array_equal(estimate, terms["log_likelihood"])
    assert np.all((terms["ess"] >= 1 - 1e-12) & (terms["ess"] <= 6 + 1e-12))


@pytest.mark.parametrize("spread, expected", [(0.0, 8.0), (1e3, 1.0)])
def test_the_effective_sample_size_is_s_for_equal_weights_and_1_for_one_dominant_weight(monkeypatch, spread,
                                                                                       expected):
    """1 / sum w^2 of the normalised weights: S when they are all equal, 1 when one of them is all."""
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=5, feat_dim=4, model="vrnn-gauss")
    params = init_params(config, 1, np.float64)
    x, mask = _batch()
    draws = iter(range(8))
    monkeypatch.setattr(evaluation, "log_weight", lambda result, eps, mask: np.full(mask.shape[1], -5.0)
                        + spread * (next(draws) == 3))
    ess = evaluation.evaluate_terms(params, config, x, mask, 8, np.random.default_rng(0))["ess"]
    np.testing.assert_allclose(ess, expected, rtol=1e-9)


def test_summary_per_step_weighs_sequences_by_length_and_gives_the_standard_error():
    values = {"steps": np.array([10, 20, 30, 40]), "elbo": np.array([-10.0, -22.0, -27.0, -41.0]),
              "rec": np.array([-9.0, -20.0, -25.0, -40.0]), "kl": np.array([1.0, 2.0, 2.0, 1.0]),
              "log_likelihood": np.array([-9.5, -21.0, -26.0, -40.5]), "ess": np.array([1.0, 2.0, 3.0, 9.0])}
    s = evaluatemod.summarise(values)
    assert s["elbo"]["per_sequence"] == pytest.approx(-25.0)
    assert s["elbo"]["per_step"] == pytest.approx(-100.0 / 100)
    # the per-step value is a ratio of sums; its standard error by the delta method over the 4 sequences:
    residuals = values["log_likelihood"] - s["log_likelihood"]["per_step"] * values["steps"]
    se = np.sqrt(np.sum(residuals ** 2) / 3) * 2 / 100
    assert s["log_likelihood"]["se_per_step"] == pytest.approx(se)
    assert s["kl"]["se_per_sequence"] == pytest.approx(np.std([1.0, 2.0, 2.0, 1.0], ddof=1) / 2)
    assert s["ess"] == {"median": 2.5, "min": 1.0}


def test_the_sample_check_says_moved_only_for_a_change_beyond_twice_its_standard_error():
    steps = np.full(50, 10)
    base = {"steps": steps, "log_likelihood": np.zeros(50)}
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(50)
    noise -= noise.mean()  # a change of exactly zero on average
    assert not evaluatemod.sample_check(base, {"log_likelihood": noise})[2]
    change, se, moved = evaluatemod.sample_check(base, {"log_likelihood": noise + 2.0})
    assert moved and change == pytest.approx(2.0 / 10) and se == pytest.approx(np.std(noise, ddof=1) * np.sqrt(50) / 500)


def test_evaluate_prints_the_terms_and_writes_them_per_sequence(runs, capsys):
    assert evaluatemod.main([runs["vrnn-gauss"], "--samples", "3"]) == 0
    out = capsys.readouterr().out
    for label in ("ELBO (>=", "reconstruction", "KL", "importance-sampled, S=3", "effective sample size",
                  "per sequence", "per step", "std. error"):
        assert label in out
    rows = _rows(os.path.splitext(runs["vrnn-gauss"])[0] + "-test-S3-seed0.csv")
    assert list(rows[0]) == ["sequence", "steps", "elbo", "rec", "kl", "log_likelihood_is_3", "ess"]
    for r in rows:
        assert float(r["elbo"]) == pytest.approx(float(r["rec"]) - float(r["kl"]), abs=2e-4)  # (4 decimals)
        assert 1 - 1e-4 <= float(r["ess"]) <= 3 + 1e-4
    # the printed per-step ELBO is the CSV's sum over its step count
    per_step = sum(float(r["elbo"]) for r in rows) / sum(int(r["steps"]) for r in rows)
    line = next(line for line in out.splitlines() if line.strip().startswith("ELBO"))
    assert float(line.split()[-2]) == pytest.approx(per_step, abs=1e-3)


def test_an_rnn_baseline_has_one_exact_column(runs, capsys):
    assert evaluatemod.main([runs["rnn-gmm"], "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "exact" in out and "importance" not in out and "ELBO" not in out
    rows = _rows(os.path.splitext(runs["rnn-gmm"])[0] + "-test-exact.csv")
    assert list(rows[0]) == ["sequence", "steps", "log_likelihood_exact"]


def test_an_earlier_evaluation_is_never_replaced_silently(runs, capsys):
    ck = runs["vrnn-gauss"]
    assert evaluatemod.main([ck, "--samples", "2", "--seed", "5"]) == 0
    path = os.path.splitext(ck)[0] + "-test-S2-seed5.csv"
    before = open(path).read()
    capsys.readouterr()
    assert evaluatemod.main([ck, "--samples", "2", "--seed", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and path in err[0] and "--overwrite" in err[0]
    assert open(path).read() == before
    assert evaluatemod.main([ck, "--samples", "2", "--seed", "6"]) == 0  # other settings: another file
    assert os.path.exists(os.path.splitext(ck)[0] + "-test-S2-seed6.csv")
    assert evaluatemod.main([ck, "--samples", "2", "--seed", "5", "--overwrite"]) == 0
    assert open(path).read() == before  # same settings, same noise: the same values


def test_check_samples_reports_s_and_4s(runs, capsys):
    assert evaluatemod.main([runs["vrnn-gauss"], "--samples", "2", "--check-samples"]) == 0
    out = capsys.readouterr().out
    assert "with S=8:" in out and ("it moved" in out or "within the noise" in out)
    rows = _rows(os.path.splitext(runs["vrnn-gauss"])[0] + "-test-S2+4S-seed0.csv")
    assert "log_likelihood_is_8" in rows[0]


# ---- training: a fixed split across seeds, and an averaged validation bound ----------------------------------

def _state(out):
    return load_checkpoint(os.path.join(out, "last.npz"))["train_state"]


def test_the_split_seed_is_separate_from_the_seed(tmp_path):
    runs = {}
    for name, extra in (("a", ["--seed", "1"]), ("b", ["--seed", "2"]), ("c", ["--seed", "1", "--split-seed", "4"])):
        out = str(tmp_path / name)
        assert trainmod.main(SMALL + ["--model", "vrnn-gauss", "--out", out, *extra]) == 0
        runs[name] = (_state(out)["data"]["seed"], load_checkpoint(os.path.join(out, "last.npz"))["params"])
    assert runs["a"][0] == runs["b"][0] == 0 and runs["c"][0] == 4
    assert not np.array_equal(runs["a"][1]["phi_x.l0.W"], runs["b"][1]["phi_x.l0.W"])  # --seed: initialisation
    ids = {s: datalib.load_splits("series", split_seed=s).test_ids for s in (0, 4)}
    assert not np.array_equal(ids[0], ids[4])  # (so the stored split seed is what decides the test split)


def test_resume_keeps_the_split_and_refuses_another(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert trainmod.main(SMALL + ["--model", "vrnn-gauss", "--out", out, "--split-seed", "3"]) == 0
    assert trainmod.main(["--resume", "--out", out, "--epochs", "2"]) == 0
    assert _state(out)["data"]["seed"] == 3 and _state(out)["args"]["split_seed"] == 3
    capsys.readouterr()
    assert trainmod.main(["--resume", "--out", out, "--epochs", "3", "--split-seed", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--split-seed 0" in err[0] and "split seed 3" in err[0]


def test_a_run_from_before_split_seed_resumes_on_its_own_split(tmp_path):
    """Older checkpoints store no split_seed flag: their data was split with --seed, stored as data/seed."""
    out = str(tmp_path / "run")
    assert trainmod.main(SMALL + ["--model", "vrnn-gauss", "--out", out, "--seed", "2", "--split-seed", "2"]) == 0
    path = os.path.join(out, "last.npz")
    ck = load_checkpoint(path)
    state = ck["train_state"]
    del state["args"]["split_seed"]
    save_checkpoint(path, ck["params"], ck["config"], optimizer_arrays=ck["optimizer_arrays"],
                    train_state=state, data_arrays=ck["data_arrays"])
    assert trainmod.main(["--resume", "--out", out, "--epochs", "2"]) == 0
    assert _state(out)["data"]["seed"] == 2 and _state(out)["args"]["split_seed"] == 2


def test_the_validation_bound_averages_its_draws():
    config = VRNNConfig(x_dim=2, z_dim=2, h_dim=5, feat_dim=4, model="vrnn-gauss")
    params = init_params(config, 1, np.float64)
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((t, 2)) for t in (6, 4, 5)]
    loss, per_step, kl = trainmod.evaluate_bound(params, config, seqs, 2, 7, draws=3)
    # by hand: the same noise stream, three draws per batch, averaged per sequence and per step
    x_all = [datalib.pad_batch(b) for b in ([seqs[1], seqs[2]], [seqs[0]])]  # batches of similar lengths
    noise = np.random.default_rng([7, 12345])
    total = 0.0
    for x, mask in x_all:
        for _ in range(3):
            r = forward(params, config, x, mask, noise.standard_normal(x.shape[:2] + (2,)))[0]
            total += float((r["nll"] + r["kl"]).sum())
    assert loss == pytest.approx(total / (3 * len(seqs)), rel=1e-12)
    assert per_step == pytest.approx(total / (3 * 15), rel=1e-12)
    one = trainmod.evaluate_bound(params, config, seqs, 2, 7, draws=1)[0]
    assert one != pytest.approx(loss, rel=1e-9)  # the average is not the first draw


def test_no_progress_bar_in_a_log_only_the_epoch_lines(tmp_path, capsys):
    assert trainmod.main(SMALL + ["--model", "vrnn-gauss", "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "it/s" not in captured.err
    assert [line.split(":")[0].strip() for line in captured.out.splitlines() if "epoch " in line
            and line.strip().startswith("epoch")] == ["epoch 1", "epoch 2"]


def test_on_a_terminal_the_progress_bar_is_drawn(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(trainmod, "on_terminal", lambda stream: True)
    assert trainmod.main(SMALL + ["--model", "vrnn-gauss", "--out", str(tmp_path / "r")]) == 0
    assert "epoch 1/1" in capsys.readouterr().err  # tqdm's bar, on stderr


def test_evaluation_batches_group_sequences_of_similar_length():
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((t, 2)) for t in (50, 3, 48, 4, 49, 5)]
    batches = list(datalib.batches_by_length(seqs, 2))
    assert [b[0] for b in batches] == [[1, 3], [5, 2], [4, 0]]
    for indices, x, mask in batches:
        assert x.shape[0] == max(len(seqs[i]) for i in indices)  # padded to its own longest only
        for column, i in enumerate(indices):
            np.testing.assert_array_equal(x[:len(seqs[i]), column], seqs[i])
            assert mask[:, column].sum() == len(seqs[i])


def test_evaluate_writes_each_sequence_s_values_in_the_split_s_order(runs, capsys):
    """Batched by length, reported in order: the CSV's steps column is the split's sequence lengths."""
    assert evaluatemod.main([runs["vrnn-gauss"], "--samples", "2", "--split", "train", "--overwrite"]) == 0
    rows = _rows(os.path.splitext(runs["vrnn-gauss"])[0] + "-train-S2-seed0.csv")
    assert [int(r["steps"]) for r in rows] == [len(s) for s in datalib.load_splits("series").train]
