"""Tests of minivrnn.data: the shipped samples, splits, normalisation, batches, round trips and bad input.

Expected statistics are recomputed here from the raw `.npz` arrays with plain NumPy, never taken from the
loader's own output.
"""
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivrnn import data

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"
X_DIM = {"speech": 200, "handwriting": 3, "series": 1}


def raw(name):
    """The arrays of a shipped file, read with plain NumPy."""
    with np.load(SAMPLES / f"{name}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def raw_sequences(arrays):
    o = arrays["offsets"]
    return [arrays["data"][o[i] : o[i + 1]] for i in range(len(o) - 1)]


# ----------------------------------------------------------------------------------------------------------
# The shipped files
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", data.SHIPPED)
def test_shipped_file_follows_the_documented_layout(name):
    a = raw(name)
    assert str(a["kind"]) == name
    o = a["offsets"]
    assert o.dtype == np.int64 and o[0] == 0 and o[-1] == len(a["data"]) and np.all(np.diff(o) > 0)
    assert a["group"].shape == (len(o) - 1,) and a["group"].max() < len(a["group_names"])
    assert a["names"].shape == (len(o) - 1,)
    assert np.all(np.isfinite(a["data"]))
    if name == "speech":
        assert a["data"].dtype == np.int16 and a["data"].ndim == 1 and int(a["sample_rate"]) == 16000
    else:
        assert a["data"].dtype == np.float32 and a["data"].shape[1] == X_DIM[name]


def test_shipped_contents_match_the_readme():
    speech, hand, series = raw("speech"), raw("handwriting"), raw("series")
    # five voices x the numbers 0-19; four speakers (Allison Smith records both English and Spanish)
    assert len(speech["offsets"]) - 1 == 100 and len(speech["group_names"]) == 4
    assert np.bincount(speech["group"]).tolist() == [40, 20, 20, 20]
    assert 60 <= len(speech["data"]) / 16000 <= 80  # seconds of speech
    # 20 writers x 16 lines; pen_up closes every line's last stroke
    assert len(hand["offsets"]) - 1 == 320 and np.bincount(hand["group"]).tolist() == [16] * 20
    assert np.all(hand["data"][hand["offsets"][1:] - 1, 2] == 1)
    assert len(series["offsets"]) - 1 == 11 and 300 < series["data"].min() < series["data"].max() < 400


def test_shipped_data_stays_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 4_000_000


def test_missing_shipped_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(data.DataError, match="MINIVRNN_DATA_DIR") as e:
        data.load_splits("speech")
    assert str(e.value).startswith(str(tmp_path / "speech.npz")) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------------------
# Splits and normalisation on the shipped files
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", data.SHIPPED)
def test_load_splits_gives_float_sequences_of_the_right_width(name):
    s = data.load_splits(name)
    assert s.kind == name and s.x_dim == X_DIM[name]
    for seq in s.train + s.valid + s.test:
        assert seq.dtype == np.float32 and seq.ndim == 2 and seq.shape[1] == X_DIM[name]
        assert np.all(np.isfinite(seq))
    lengths = np.diff(raw(name)["offsets"])
    if name == "speech":
        lengths = lengths // 200  # whole frames
        assert s.sample_rate == 16000 and s.frame_size == 200
    ids = np.concatenate([s.train_ids, s.valid_ids, s.test_ids])
    assert [len(q) for q in s.train + s.valid + s.test] == lengths[ids].tolist()


@pytest.mark.parametrize("name, heldout", [("speech", "utterance"), ("speech", "group"),
                                           ("handwriting", "utterance"), ("handwriting", "group"),
                                           ("series", "utterance")])
def test_splits_are_disjoint_complete_and_deterministic(name, heldout):
    s = data.load_splits(name, heldout=heldout, split_seed=3)
    train, valid, test = set(s.train_ids), set(s.valid_ids), set(s.test_ids)
    assert not (train & valid or train & test or valid & test)
    assert train | valid | test == set(range(len(raw(name)["offsets"]) - 1))
    assert valid and test and len(train) > len(valid)
    again = data.load_splits(name, heldout=heldout, split_seed=3)
    assert np.array_equal(again.test_ids, s.test_ids) and np.array_equal(again.valid_ids, s.valid_ids)
    if heldout == "group":  # no speaker or writer is in two splits
        groups = [set(s.group[ids]) for ids in (s.train_ids, s.valid_ids, s.test_ids)]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_other_seeds_give_other_splits():
    tests = {tuple(data.load_splits("handwriting", split_seed=seed).test_ids) for seed in range(4)}
    assert len(tests) == 4


def test_split_fractions():
    train, valid, test = data.split_indices(np.zeros(50, dtype=int), valid_fraction=0.2, test_fraction=0.1)
    assert (len(train), len(valid), len(test)) == (35, 10, 5)
    with pytest.raises(ValueError, match="too few"):
        data.split_indices(np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="heldout"):
        data.split_indices(np.zeros(9, dtype=int), heldout="speaker")


def test_speech_statistics_come_from_the_training_split_only():
    s = data.load_splits("speech")
    waves = raw_sequences(raw("speech"))
    frames = lambda ids: np.concatenate([w[: len(w) // 200 * 200] for w in (waves[i] for i in ids)]) / 32768
    train = frames(s.train_ids)
    np.testing.assert_allclose(s.normalizer.mean, np.full(200, train.mean()), rtol=1e-9)
    np.testing.assert_allclose(s.normalizer.std, np.full(200, train.std()), rtol=1e-9)
    everything = frames(np.arange(len(waves)))
    assert abs(everything.std() - train.std()) > 1e-4 * train.std()  # so the check above can tell them apart
    assert np.all(s.normalizer.scaled)


def test_handwriting_offsets_are_scaled_by_their_training_std_and_the_pen_bit_is_untouched():
    s = data.load_splits("handwriting")
    seqs = raw_sequences(raw("handwriting"))
    train = np.concatenate([seqs[i] for i in s.train_ids]).astype(np.float64)
    np.testing.assert_allclose(s.normalizer.std[:2], train[:, :2].std(axis=0), rtol=1e-9)
    assert s.normalizer.mean.tolist() == [0.0, 0.0, 0.0] and s.normalizer.scaled.tolist() == [True, True, False]
    for i, seq in zip(s.test_ids, s.test):
        assert np.array_equal(seq[:, 2], seqs[i][:, 2])  # pen bits exactly as stored
        np.testing.assert_allclose(seq[:, :2] * s.normalizer.std[:2], seqs[i][:, :2], rtol=1e-6, atol=1e-6)


def test_series_is_standardised_with_training_statistics():
    s = data.load_splits("series")
    seqs = raw_sequences(raw("series"))
    train = np.concatenate([seqs[i] for i in s.train_ids]).astype(np.float64)
    np.testing.assert_allclose(s.normalizer.mean, train.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(s.normalizer.std, train.std(axis=0), rtol=1e-9)
    flat = np.concatenate(s.train)
    np.testing.assert_allclose([flat.mean(), flat.std()], [0.0, 1.0], atol=1e-5)


def test_normalizer_survives_a_checkpoint_file(tmp_path):
    norm = data.load_splits("handwriting").normalizer
    np.savez(tmp_path / "ck.npz", **{f"data/{k}": v for k, v in norm.to_arrays().items()})
    with np.load(tmp_path / "ck.npz") as f:
        back = data.Normalizer.from_arrays({k[5:]: f[k] for k in f.files})
    x = np.random.default_rng(0).normal(size=(7, 3))
    x[:, 2] = [0, 1, 0, 0, 1, 1, 0]
    np.testing.assert_array_equal(back.normalize(x), norm.normalize(x))
    np.testing.assert_allclose(back.denormalize(back.normalize(x)), x, rtol=1e-12)


def test_splits_to_arrays_carries_what_sampling_needs():
    arrays = data.load_splits("speech", frame_size=160).to_arrays()
    assert str(arrays["kind"]) == "speech" and int(arrays["frame_size"]) == 160
    assert int(arrays["sample_rate"]) == 16000 and arrays["mean"].shape == (160,)
    assert data.Normalizer.from_arrays(arrays).std.shape == (160,)


# ----------------------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------------------


def test_speech_frames_back_to_the_stored_waveform_and_a_wav_file(tmp_path):
    s = data.load_splits("speech")
    waves = raw_sequences(raw("speech"))
    i, frames = s.test_ids[0], s.test[0]  # (T, 200), normalised
    waveform = data.frames_to_waveform(s.normalizer.denormalize(frames.astype(np.float64)))
    expected = waves[i][: len(frames) * 200]
    np.testing.assert_allclose(waveform * 32768, expected, atol=0.05)  # float32 storage: well below 1 step
    path = data.write_wav(tmp_path / "x.wav", waveform, sample_rate=s.sample_rate)
    samples, rate = data.read_wav(path)
    assert rate == 16000 and np.array_equal(samples * 32768, expected)


def test_waveform_to_frames_drops_the_partial_frame():
    frames = data.waveform_to_frames(np.arange(10.0), frame_size=4)
    assert frames.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert data.frames_to_waveform(frames).tolist() == list(range(8))
    with pytest.raises(ValueError, match="shorter than one frame"):
        data.waveform_to_frames(np.zeros(3), frame_size=4)


def test_offsets_to_positions_by_hand():
    offsets = np.array([[2, 1, 0], [1, 2, 0], [3, -1, 1], [-2, 0, 0]], dtype=float)  # from the origin
    positions = data.offsets_to_positions(offsets)
    assert positions.tolist() == [[2, 1, 0], [3, 3, 0], [6, 2, 1], [4, 2, 0]]
    assert data.positions_to_offsets(positions).tolist() == offsets.tolist()


def test_shipped_handwriting_offsets_back_to_pen_positions():
    s = data.load_splits("handwriting")
    seqs = raw_sequences(raw("handwriting"))
    for i, seq in zip(s.valid_ids, s.valid):
        offsets = s.normalizer.denormalize(seq.astype(np.float64))
        positions = data.offsets_to_positions(offsets)
        assert positions[0, :2].tolist() == [0.0, 0.0]  # every line starts at the origin
        np.testing.assert_allclose(positions[:, :2], np.cumsum(seqs[i][:, :2], axis=0), atol=1e-3)
        np.testing.assert_allclose(data.positions_to_offsets(positions), offsets, atol=1e-9)


def test_wav_round_trip_is_exact_and_clips(tmp_path):
    x = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    samples, rate = data.read_wav(data.write_wav(tmp_path / "a.wav", x, sample_rate=8000))
    assert rate == 8000 and (samples * 32768).astype(int).tolist() == x.tolist()
    samples, _ = data.read_wav(data.write_wav(tmp_path / "b.wav", np.array([2.0, -2.0, 0.5])))
    assert (samples * 32768).tolist() == [32767, -32768, 16384]


# ----------------------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------------------


@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6), D=st.integers(1, 4))
def test_pad_batch_pads_with_zeros_and_unpads(lengths, D):
    rng = np.random.default_rng(len(lengths) * 10 + D)
    seqs = [rng.normal(size=(n, D)).astype(np.float32) + 5 for n in lengths]  # never 0, so padding shows
    x, mask = data.pad_batch(seqs)
    assert x.shape == (max(lengths), len(lengths), D) and mask.shape == x.shape[:2]
    assert x.dtype == mask.dtype == np.float32
    assert mask.sum(axis=0).tolist() == lengths and set(np.unique(mask)) <= {0.0, 1.0}
    assert np.all(x[mask == 0] == 0) and np.all(x[mask == 1] != 0)
    for original, back in zip(seqs, data.unpad_batch(x, mask)):
        assert np.array_equal(original, back)


def test_iterate_batches_covers_every_sequence_once_in_a_shuffled_order():
    seqs = [np.full((n % 5 + 1, 2), n, dtype=np.float64) for n in range(23)]  # sequence n holds the value n
    seen = []
    for x, mask in data.iterate_batches(seqs, 5, np.random.default_rng(0)):
        assert x.shape[1] <= 5 and x.dtype == mask.dtype == np.float64
        seen += [int(x[0, b, 0]) for b in range(x.shape[1])]
        for b in range(x.shape[1]):
            assert mask[:, b].sum() == seen[-x.shape[1] + b] % 5 + 1
    assert sorted(seen) == list(range(23)) and seen != list(range(23))
    again = [int(x[0, b, 0]) for x, _ in data.iterate_batches(seqs, 5, np.random.default_rng(0))
             for b in range(x.shape[1])]
    assert again == seen
    in_order = [int(x[0, b, 0]) for x, _ in data.iterate_batches(seqs, 5, shuffle=False)
                for b in range(x.shape[1])]
    assert in_order == list(range(23))


def test_iterate_batches_crops_long_sequences_to_random_windows():
    seqs = [np.arange(50.0)[:, None] + 1000 * i for i in range(4)]
    starts = set()
    for _ in range(5):
        for x, mask in data.iterate_batches(seqs, 4, np.random.default_rng(len(starts)), max_len=10):
            assert x.shape[0] == 10 and np.all(mask == 1)
            for b in range(4):
                window = x[:, b, 0]
                assert np.array_equal(np.diff(window), np.ones(9))  # consecutive steps of one sequence
                starts.add(window[0] % 1000)
    assert len(starts) > 3
    x, mask = next(data.iterate_batches([np.ones((3, 1))], 1, np.random.default_rng(0), max_len=10))
    assert x.shape == (3, 1, 1)  # shorter sequences are kept whole
    with pytest.raises(ValueError, match="rng"):
        next(data.iterate_batches(seqs, 2))


# ----------------------------------------------------------------------------------------------------------
# Users' own data
# ----------------------------------------------------------------------------------------------------------


def test_the_readme_example_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sequences = [np.random.randn(300, 2).astype(np.float32), np.random.randn(250, 2).astype(np.float32)]
    np.savez("mine.npz", data=np.concatenate(sequences), kind="series",
             offsets=np.cumsum([0] + [len(s) for s in sequences]))
    s = data.load_splits("mine.npz", valid_fraction=0.0, test_fraction=0.5)
    assert s.x_dim == 2 and len(s.train) == len(s.test) == 1 and s.group_names == ["group0"]


def test_a_folder_of_wav_files_loads_as_speech_with_sub_folders_as_speakers(tmp_path):
    rng = np.random.default_rng(0)
    waves = {}
    for speaker in ("ann", "bob"):
        (tmp_path / speaker).mkdir()
        for k in range(3):
            waves[f"{speaker}/{k}.wav"] = rng.integers(-3000, 3000, size=1000 + 100 * k).astype(np.int16)
            data.write_wav(tmp_path / speaker / f"{k}.wav", waves[f"{speaker}/{k}.wav"], sample_rate=8000)
    ds = data.load_dataset(tmp_path)
    assert ds.kind == "speech" and ds.sample_rate == 8000 and ds.group_names == ["ann", "bob"]
    assert ds.names == sorted(waves) and ds.group.tolist() == [0, 0, 0, 1, 1, 1]
    for name, seq in zip(ds.names, ds.sequences):
        assert np.array_equal(seq * 32768, waves[name])
    s = data.load_splits(tmp_path, frame_size=100, heldout="group", valid_fraction=0.0, test_fraction=0.5)
    assert s.x_dim == 100 and len(s.train) == len(s.test) == 3 and s.sample_rate == 8000


# ----------------------------------------------------------------------------------------------------------
# Bad input: one line that names the file and the problem
# ----------------------------------------------------------------------------------------------------------


def good_arrays():
    return dict(data=np.arange(20, dtype=np.float32).reshape(10, 2), offsets=np.array([0, 4, 10]),
                kind=np.array("series"))


def save_npz(tmp_path, **changes):
    arrays = {k: v for k, v in {**good_arrays(), **changes}.items() if v is not None}
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


def assert_data_error(path, words, **kwargs):
    with pytest.raises(data.DataError) as e:
        data.load_splits(path, valid_fraction=0.0, test_fraction=0.0, **kwargs)
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message and words in message, message


def test_the_good_arrays_load(tmp_path):
    assert len(data.load_splits(save_npz(tmp_path), valid_fraction=0.0, test_fraction=0.0).train) == 2


BAD_NPZ = {
    "missing key": (dict(offsets=None), "missing key 'offsets'"),
    "unknown kind": (dict(kind=np.array("video")), "'video'"),
    "integer data": (dict(data=np.zeros((10, 2), dtype=np.int32)), "dtype int32"),
    "string data": (dict(data=np.array(["a"] * 10)), "dtype <U1"),
    "float offsets": (dict(offsets=np.array([0.0, 4.0, 10.0])), "'offsets'"),
    "offsets short of the data": (dict(offsets=np.array([0, 4, 9])), "len(data) = 10"),
    "unsigned offsets that go back": (dict(offsets=np.array([0, 6, 4, 10], dtype=np.uint64)),
                                      "sequence 1 is empty or negative"),
    "empty sequence": (dict(offsets=np.array([0, 4, 4, 10])), "sequence 1 is empty"),
    "NaN": (dict(data=np.where(np.arange(20).reshape(10, 2) == 13, np.nan, 0.0)), "NaN or Inf"),
    "Inf": (dict(data=np.where(np.arange(20).reshape(10, 2) == 3, np.inf, 0.0)), "sequence 0"),
    "pen bit": (dict(data=np.full((10, 3), 0.5), kind=np.array("handwriting")), "pen_up"),
    "handwriting width": (dict(data=np.zeros((10, 2)), kind=np.array("handwriting")), "(N, 3)"),
    "speech without rate": (dict(data=np.zeros(10, dtype=np.int16), kind=np.array("speech")), "sample_rate"),
    "float speech in int16 units": (dict(data=np.full(10, 1234.0), kind=np.array("speech"),
                                         sample_rate=np.array(16000)), "up to 1234; float speech must lie in [-1, 1]"),
    "group length": (dict(group=np.array([0, 1, 1])), "'group'"),
    "pickled objects": (dict(names=np.array([{"a": 1}, None], dtype=object)), "Python objects"),
    "constant data": (dict(data=np.zeros((10, 2), dtype=np.float32)), "std is 0 in every dimension"),
    "statistics that overflow": (dict(data=np.arange(20.0).reshape(10, 2) * 1e300), "overflow"),
}


@pytest.mark.parametrize("case", BAD_NPZ)
def test_bad_npz_files(tmp_path, case):
    changes, words = BAD_NPZ[case]
    assert_data_error(save_npz(tmp_path, **changes), words)


def test_speech_shorter_than_one_frame(tmp_path):
    path = save_npz(tmp_path, data=np.ones(500, dtype=np.int16), offsets=np.array([0, 350, 500]),
                    kind=np.array("speech"), sample_rate=np.array(16000))
    assert_data_error(path, "sequence 1 (sequence 1) has 150 samples, fewer than one frame of 200")


def test_a_wav_shorter_than_one_frame_is_named_by_its_own_path(tmp_path):
    data.write_wav(tmp_path / "long.wav", np.zeros(800), sample_rate=16000)
    data.write_wav(tmp_path / "short.wav", np.zeros(150), sample_rate=16000)
    with pytest.raises(data.DataError, match="has 150 samples, fewer than one frame of 200") as e:
        data.load_splits(tmp_path, valid_fraction=0.0, test_fraction=0.0)
    assert str(e.value).startswith(str(tmp_path / "short.wav"))


def test_frame_size_must_be_positive():
    for frame_size in (0, -200):
        with pytest.raises(ValueError, match="frame_size"):
            data.load_splits("speech", frame_size=frame_size)
        with pytest.raises(ValueError, match="frame_size"):
            data.waveform_to_frames(np.zeros(400), frame_size)


def test_missing_and_unreadable_files(tmp_path):
    assert_data_error(tmp_path / "nothing.npz", "no such file")
    assert_data_error(tmp_path / "speach", "no such file or folder")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    assert_data_error(tmp_path / "junk.npz", "not a readable .npz file (not a zip archive)")
    np.save(tmp_path / "one.npy", np.zeros(3))
    assert_data_error(tmp_path / "one.npy", "expected a dataset .npz")
    (tmp_path / "one.npy").rename(tmp_path / "renamed.npz")
    assert_data_error(tmp_path / "renamed.npz", "is a single .npy array")
    (tmp_path / "empty").mkdir()
    assert_data_error(tmp_path / "empty", "no .wav files")


def test_wav_at_another_sample_rate(tmp_path):
    data.write_wav(tmp_path / "a.wav", np.zeros(800), sample_rate=16000)
    data.write_wav(tmp_path / "b.wav", np.zeros(800), sample_rate=8000)
    with pytest.raises(data.DataError, match="sample rate 8000 Hz; expected 16000 Hz") as e:
        data.load_splits(tmp_path, valid_fraction=0.0, test_fraction=0.0)
    assert str(e.value).startswith(str(tmp_path / "b.wav"))
    with pytest.raises(data.DataError, match="sample rate 16000 Hz; expected 8000") as e:
        data.load_dataset(tmp_path, sample_rate=8000)
    assert str(e.value).startswith(str(tmp_path / "a.wav"))


@pytest.mark.parametrize("channels, width, words", [(2, 2, "2 channels; expected mono"),
                                                     (1, 1, "8-bit samples; expected 16-bit")])
def test_wav_that_is_not_mono_16_bit(tmp_path, channels, width, words):
    path = tmp_path / "odd.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(16000)
        w.writeframes(bytes(400 * channels * width))
    with pytest.raises(data.DataError, match=words) as e:
        data.read_wav(path)
    assert str(e.value).startswith(str(path))
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(data.DataError, match="not a readable PCM .wav"):
        data.read_wav(tmp_path / "junk.wav")


def test_too_few_groups_to_hold_one_out():
    with pytest.raises(data.DataError, match="only 1 group: too few") as e:
        data.load_splits("series", heldout="group")
    assert str(e.value).startswith(str(SAMPLES / "series.npz"))
