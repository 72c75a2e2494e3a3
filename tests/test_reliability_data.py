"""Issue 24 for dataset files and evaluate's --samples: bad input is one `error:` line and exit code 2 (never a
traceback), and sizes that cannot fit are refused up front instead of running on."""
import io
import struct
import zipfile

import numpy as np
import pytest

from minivrnn import evaluate as evalmod
from minivrnn import train as trainmod
from minivrnn.data import (DataError, fit_normalizer, load_dataset, load_splits, read_wav, split_indices,
                           write_wav)

TINY = ["--model", "vrnn-gauss", "--z-dim", "2", "--h-dim", "4", "--feat-dim", "4", "--batch-size", "4",
        "--epochs", "1", "--no-plots", "--seed", "0"]
OFFSETS = np.array([0, 100, 200, 300])


def one_error_line(capsys, *expected):
    """stderr holds exactly one `error:` line, no traceback, and the line names every ``expected`` text."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def train_fails(tmp_path, capsys, data, *expected):
    code = trainmod.main(["--data", str(data), "--out", str(tmp_path / "run"), *TINY])
    assert code == 2
    line = one_error_line(capsys, *expected)
    assert not (tmp_path / "run" / "last.npz").exists()  # refused before training, nothing written
    return line


def series_npz(path, data, **extra):
    np.savez(path, data=data, offsets=OFFSETS, kind=np.array("series"), **extra)
    return path


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# -- a .wav whose data chunk has an odd byte count --------------------------------------------------------


def odd_wav(path):
    """A valid 16-bit mono wav, then one byte appended to its data chunk with the RIFF and data sizes fixed."""
    write_wav(path, 0.5 * np.sin(np.arange(1000) / 10.0), 8000)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"data")
    size = struct.unpack("<I", raw[at + 4 : at + 8])[0]
    assert at > 0 and at + 8 + size == len(raw)  # the data chunk is the last one
    raw += b"\x01"
    raw[at + 4 : at + 8] = struct.pack("<I", size + 1)
    raw[4:8] = struct.pack("<I", len(raw) - 8)
    path.write_bytes(bytes(raw))
    return path


def test_a_wav_whose_data_chunk_has_an_odd_byte_count_is_refused(tmp_path, capsys):
    folder = tmp_path / "wavs"
    folder.mkdir()
    for name in "abcd":
        write_wav(folder / f"{name}.wav", 0.5 * np.sin(np.arange(1000) / 10.0), 8000)
    bad = odd_wav(folder / "c.wav")
    assert read_wav(folder / "a.wav")[0].shape == (1000,)  # the good ones still read
    with pytest.raises(DataError, match="odd number of bytes"):
        read_wav(bad)
    train_fails(tmp_path, capsys, folder, str(bad), "odd number of bytes (2001)")


def test_a_truncated_wav_is_refused(tmp_path, capsys):
    folder = tmp_path / "wavs"
    folder.mkdir()
    for name in "abcd":
        write_wav(folder / f"{name}.wav", 0.5 * np.sin(np.arange(1000) / 10.0), 8000)
    bad = folder / "b.wav"
    bad.write_bytes(bad.read_bytes()[:-1])  # the header still declares 1000 samples (2000 bytes)
    train_fails(tmp_path, capsys, folder, str(bad), "truncated", "1999 bytes")


# -- an .npz member that is not an .npy --------------------------------------------------------------------


@pytest.mark.parametrize("member", ["group.npy", "data", "notes"])
def test_an_npz_member_that_is_not_an_npy_is_refused(tmp_path, capsys, member):
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as z:
        arrays = dict(data=np.random.default_rng(0).normal(size=(300, 1)), offsets=OFFSETS, kind=np.array("series"))
        for key, value in arrays.items():
            if f"{key}.npy" != member and key != member:
                z.writestr(f"{key}.npy", npy_bytes(value))
        z.writestr(member, b"these are raw bytes, not an array")
    key = member.removesuffix(".npy")
    with pytest.raises(DataError, match=f"member '{key}' is not a NumPy .npy array"):
        load_dataset(path)
    train_fails(tmp_path, capsys, path, str(path), f"'{key}'", "not a NumPy .npy array")


# -- group ids: bounded by the number of sequences ----------------------------------------------------------


def test_a_group_id_of_a_trillion_is_mapped_without_one_name_per_id(tmp_path):
    data = np.random.default_rng(0).normal(size=(300, 1))
    path = series_npz(tmp_path / "sparse.npz", data, group=np.array([7, 10**12, 7], dtype=np.int64))
    ds = load_dataset(path)  # used to build 10**12 names (past 90 s, or out of memory)
    assert ds.group.tolist() == [0, 1, 0]
    assert ds.group_names == ["group7", f"group{10**12}"]
    assert [ds.group_names[g] for g in ds.group] == ["group7", f"group{10**12}", "group7"]
    # the largest unsigned id too (it does not fit in int64)
    path = series_npz(tmp_path / "huge.npz", data, group=np.array([2**64 - 1, 0, 0], dtype=np.uint64))
    ds = load_dataset(path)
    assert ds.group.tolist() == [1, 0, 0] and ds.group_names == ["group0", f"group{2**64 - 1}"]


def test_dense_group_ids_keep_their_default_names(tmp_path):
    data = np.random.default_rng(0).normal(size=(300, 1))
    ds = load_dataset(series_npz(tmp_path / "dense.npz", data, group=np.array([2, 0, 2])))
    assert ds.group.tolist() == [2, 0, 2] and ds.group_names == ["group0", "group1", "group2"]


def test_sparse_group_ids_split_by_group_like_their_compact_numbers(tmp_path):
    data = np.random.default_rng(0).normal(size=(1200, 1))
    offsets = np.arange(0, 1201, 100)  # 12 sequences, 4 groups
    compact = np.repeat(np.arange(4), 3)
    np.savez(tmp_path / "sparse.npz", data=data, offsets=offsets, kind=np.array("series"),
             group=compact * 10**12)
    np.savez(tmp_path / "compact.npz", data=data, offsets=offsets, kind=np.array("series"), group=compact)
    a = load_splits(tmp_path / "sparse.npz", heldout="group", valid_fraction=0.25, test_fraction=0.25)
    b = load_splits(tmp_path / "compact.npz", heldout="group", valid_fraction=0.25, test_fraction=0.25)
    for split in ("train_ids", "valid_ids", "test_ids"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))
    assert set(a.group[a.test_ids]).isdisjoint(a.group[a.train_ids])


def test_group_names_that_miss_a_huge_id_are_one_error_line(tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(300, 1))
    path = series_npz(tmp_path / "named.npz", data, group=np.array([0, 10**12, 0]),
                      group_names=np.array(["ann", "bob"]))
    train_fails(tmp_path, capsys, path, str(path), "'group_names'", str(10**12))


# -- statistics that overflow or vanish ---------------------------------------------------------------------


def test_data_scaled_by_1e300_is_refused_with_the_reason(tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(300, 2)) * 1e300
    assert np.isfinite(data).all()  # finite values, but their squares overflow
    path = series_npz(tmp_path / "huge.npz", data)
    with pytest.raises(ValueError, match="overflow"):
        fit_normalizer([data], "series")
    train_fails(tmp_path, capsys, path, str(path), "overflow", "rescale")


def test_data_whose_std_underflows_to_0_everywhere_is_refused(tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(300, 2)) * 1e-320  # squares underflow: std 0
    path = series_npz(tmp_path / "tiny.npz", data)
    train_fails(tmp_path, capsys, path, str(path), "std is 0 in every dimension", "rescale")


def test_constant_data_is_refused_but_one_constant_dimension_is_kept(tmp_path, capsys):
    rows = np.random.default_rng(0).normal(size=(300, 2))
    rows[:, 1] = 5.0
    normalizer = fit_normalizer([rows], "series")  # one dimension varies: the constant one gets std 1
    assert normalizer.std[1] == 1.0 and normalizer.std[0] == pytest.approx(rows[:, 0].std())
    with pytest.raises(ValueError, match="std is 0 in every dimension"):
        fit_normalizer([np.full((300, 2), 5.0)], "series")
    pen = np.zeros((300, 3))
    pen[::7, 2] = 1.0  # dx = dy = 0 throughout: only the (unscaled) pen bit varies
    with pytest.raises(ValueError, match="std is 0 in every dimension"):
        fit_normalizer([pen], "handwriting")


def test_a_held_out_sequence_that_overflows_once_normalised_is_refused(tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(1000, 1)) * 1e-150  # a tiny training std
    offsets = np.arange(0, 1001, 100)  # ten sequences
    test_sequence = split_indices(np.zeros(10))[2][0]  # the default split, as train and load_splits use it
    data[offsets[test_sequence] + 5] = 1e200  # normalised: about 1e350, past float64
    path = tmp_path / "outlier.npz"
    np.savez(path, data=data, offsets=offsets, kind=np.array("series"))
    with pytest.raises(DataError, match=f"sequence {test_sequence} .*test split.* overflows"):
        load_splits(path)
    train_fails(tmp_path, capsys, path, str(path), "overflows", "rescale")


# -- evaluate --samples --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "run"
    assert trainmod.main(["--data", "series", "--out", str(out), *TINY]) == 0
    return str(out / "last.npz")


def test_evaluate_refuses_a_billion_samples_at_once(checkpoint, capsys):
    assert evalmod.main([checkpoint, "--samples", "1000000000"]) == 2
    line = one_error_line(capsys, "--samples 1000000000", "1,000,000", "smaller --samples")
    assert line.startswith("error: --samples")


def test_evaluate_refuses_samples_that_cannot_fit_in_memory(checkpoint, capsys, monkeypatch):
    monkeypatch.setattr(evalmod, "physical_memory", lambda: 2**20)  # a 1 MiB machine: 512 KiB for the values
    batch = min(32, len(load_splits("series").train))  # evaluate's batches of the training split
    bound = 2**19 // (batch * evalmod.BYTES_PER_SAMPLE_AND_SEQUENCE)
    assert evalmod.main([checkpoint, "--samples", str(bound + 1), "--split", "train"]) == 2
    one_error_line(capsys, f"--samples {bound + 1} with batches of {batch} sequences",
                   f"use --samples {bound} or fewer")
    evalmod.check_samples(bound, batch, memory=2**20)  # the bound itself fits
    with pytest.raises(evalmod.EvaluateError, match=r"use --samples 2048 or fewer"):
        evalmod.check_samples(10**6, 4096, memory=2**30)  # 2**29 / (4096 * 64) = 2048


def test_evaluate_still_runs_with_a_sensible_number_of_samples(checkpoint, capsys):
    assert evalmod.main([checkpoint, "--samples", "3"]) == 0
    assert "(~, importance-sampled, S=3)" in capsys.readouterr().out
