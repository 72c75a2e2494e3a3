"""Data: the shipped samples and your own files, as normalised sequences and time-major batches.

minivrnn never downloads anything. Three small real samples ship in ``data_samples/`` beside the package
(see its README.md for sources, licences and how ``scripts/build_data_samples.py`` made them):
``"speech"`` (the spoken numbers 0-19 in five languages, 16 kHz), ``"handwriting"`` (pen strokes synthesised
from the Hershey script font by 20 synthetic writers) and ``"series"`` (weekly Mauna Loa CO2).

Every dataset file is an ``.npz`` in one layout, and your own data loads from a path in the same layout:

=============== ================================================================================================
``data``        all sequences concatenated along axis 0: ``(N,)`` int16 (or float in [-1, 1]) waveform samples
                for speech; ``(N, 3)`` float rows ``(dx, dy, pen_up)`` for handwriting; ``(N, D)`` float for a
                series
``offsets``     ``(n_seq + 1,)`` integers: sequence i is ``data[offsets[i]:offsets[i + 1]]``
``kind``        ``"speech"``, ``"handwriting"`` or ``"series"``
``sample_rate`` (speech only) samples per second
``group``       (optional) ``(n_seq,)`` integers: the speaker or writer of each sequence
``group_names`` (optional) ``(n_seq_groups,)`` strings naming the groups
``names``       (optional) ``(n_seq,)`` strings naming the sequences
=============== ================================================================================================

A folder of mono 16-bit ``.wav`` files (read with the standard library's ``wave`` module) also loads as
speech; files in a sub-folder belong to the group (speaker) named after it.

The steps, each a plain function: `load_dataset` (read and check a file) -> `split_indices` (deterministic,
disjoint train/valid/test, by sequence or by held-out group) -> `waveform_to_frames` (speech only) ->
`fit_normalizer` (training split only) -> `iterate_batches` / `pad_batch` (time-major ``(T, B, D)`` with a
``(T, B)`` mask). `load_splits` runs them all. Every problem with a file raises `DataError`, whose
message is one line naming the file and the problem.
"""
import os
import wave
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHIPPED = ("speech", "handwriting", "series")  # the samples in data_samples/; also the possible kinds
DATA_DIR_VARIABLE = "MINIVRNN_DATA_DIR"  # set it to the data_samples/ folder when it is not beside the package
HELDOUT = ("utterance", "group")


class DataError(ValueError):
    """A missing or malformed data file; the message is one line: ``"<file>: <problem>"``."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {' '.join(str(problem).split())}")


# ----------------------------------------------------------------------------------------------------------
# Reading files
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """The sequences of one file, as stored: before splitting, framing and normalising."""

    sequences: list  # speech: (T_i,) float64 waveforms in [-1, 1); otherwise (T_i, D) float64 arrays
    group: np.ndarray  # (n_seq,) int: the speaker or writer of each sequence
    group_names: list  # the name of each group id
    names: list  # the name of each sequence
    kind: str  # "speech" | "handwriting" | "series"
    path: Path  # the file or folder it came from (named in error messages)
    sample_rate: int | None = None  # speech only


def data_dir():
    """The folder of the shipped samples: $MINIVRNN_DATA_DIR, else data_samples/ beside the package."""
    override = os.environ.get(DATA_DIR_VARIABLE)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "data_samples"


def shipped_path(name):
    """Path of a shipped sample (``"speech"``, ``"handwriting"`` or ``"series"``), checked to exist."""
    path = data_dir() / f"{name}.npz"
    if not path.is_file():
        raise DataError(path, f"the shipped '{name}' sample is missing: data_samples/ should sit beside the "
                              f"minivrnn package (use a source checkout, or set {DATA_DIR_VARIABLE})")
    return path


def load_dataset(source, *, sample_rate=None):
    """Read a shipped sample by name, a dataset ``.npz`` or a folder of ``.wav`` files; returns a `Dataset`.

    ``sample_rate`` (wav folders only) is the rate every file must have; by default the first file's.
    """
    if isinstance(source, str) and source in SHIPPED:
        return read_npz(shipped_path(source))
    if isinstance(source, str) and not source:  # (Path("") is the current folder: it would be searched for .wav)
        raise DataError("''", f"an empty path; name a dataset .npz, a folder of .wav files or a shipped sample "
                              f"({', '.join(SHIPPED)})")
    path = Path(source)
    if path.is_dir():
        return read_wav_folder(path, sample_rate=sample_rate)
    if not path.exists():
        raise DataError(path, f"no such file or folder (the shipped samples are {', '.join(SHIPPED)})")
    if path.suffix.lower() != ".npz":
        raise DataError(path, "expected a dataset .npz file or a folder of .wav files")
    return read_npz(path)


def read_npz(path):
    """Read and check a dataset ``.npz`` (layout in the module docstring); returns a `Dataset`."""
    path = Path(path)
    arrays = _read_npz_arrays(path)
    for key in ("data", "offsets", "kind"):
        if key not in arrays:
            raise DataError(path, f"missing key '{key}' (a dataset .npz needs data, offsets and kind; "
                                  f"it has {', '.join(sorted(arrays)) or 'no keys'})")
    kind = _string_scalar(path, arrays, "kind")
    if kind not in SHIPPED:
        raise DataError(path, f"key 'kind' is '{kind}', expected one of {', '.join(SHIPPED)}")
    data = _check_data(path, arrays["data"], kind)
    offsets = _check_offsets(path, arrays["offsets"], len(data))
    n_seq = len(offsets) - 1
    bad_rows = np.flatnonzero(~np.isfinite(data).reshape(len(data), -1).all(axis=1))
    if bad_rows.size:
        i = np.searchsorted(offsets, bad_rows[0], side="right") - 1
        raise DataError(path, f"key 'data' holds NaN or Inf (first in sequence {i}, row {bad_rows[0]})")
    if kind == "handwriting" and not np.isin(data[:, 2], (0.0, 1.0)).all():
        row = np.flatnonzero(~np.isin(data[:, 2], (0.0, 1.0)))[0]
        raise DataError(path, f"column 2 of 'data' (pen_up) must be 0 or 1; row {row} has {data[row, 2]}")
    if kind == "speech" and data.dtype.kind == "f" and np.abs(data).max() > 1:
        raise DataError(path, f"key 'data' holds float samples up to {np.abs(data).max():g}; float speech "
                              f"must lie in [-1, 1] (store int16, or divide by 32768)")
    group, group_names = _check_groups(path, arrays, n_seq)
    names = _check_names(path, arrays, n_seq)
    rate = _check_sample_rate(path, arrays) if kind == "speech" else None
    if kind == "speech" and data.dtype == np.int16:
        data = data / 32768.0  # int16 -> float in [-1, 1)
    data = data.astype(np.float64)
    sequences = [data[offsets[i] : offsets[i + 1]] for i in range(n_seq)]
    return Dataset(sequences, group, group_names, names, kind, path, rate)


def _read_npz_arrays(path):
    """All arrays of an .npz as a dict (never unpickling anything)."""
    if not path.is_file():
        raise DataError(path, "no such file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise DataError(path, "is a single .npy array, expected an .npz with data, offsets and kind")
    if not zipfile.is_zipfile(path):
        raise DataError(path, "not a readable .npz file (not a zip archive)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(path, f"not a readable .npz file ({type(e).__name__}: {e})") from None
    arrays = {}
    with loaded:
        for key in loaded.files:
            try:
                arrays[key] = loaded[key]
            except ValueError as e:
                if "allow_pickle" in str(e):
                    raise DataError(path, f"key '{key}' holds Python objects; store plain numeric or "
                                          f"string arrays") from None
                raise DataError(path, f"key '{key}' is not a readable .npy array ({e})") from None
            except MemoryError as e:  # its header declares more than memory holds: a damaged file, most likely
                raise DataError(path, f"key '{key}' does not fit in memory ({e}); a damaged file, or more data "
                                      f"than this machine holds") from None
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as e:
                # (NotImplementedError: a compression method zipfile cannot read; zlib.error: a damaged
                # compressed member)
                raise DataError(path, f"key '{key}' is unreadable ({type(e).__name__}: {e})") from None
            if not isinstance(arrays[key], np.ndarray):  # np.load hands back a non-.npy member as raw bytes
                raise DataError(path, f"member '{key}' is not a NumPy .npy array (raw bytes); a dataset .npz "
                                      f"holds only arrays, as written by np.savez")
    return arrays


def _string_scalar(path, arrays, key):
    value = arrays[key]
    if value.dtype.kind != "U" or value.ndim != 0:
        raise DataError(path, f"key '{key}' must be a single string, got {value.dtype} of shape {value.shape}")
    return str(value)


def _check_data(path, data, kind):
    """Shape and dtype of ``data`` for its kind."""
    if kind == "speech":
        if data.ndim != 1 or not (data.dtype == np.int16 or data.dtype.kind == "f"):
            raise DataError(path, f"key 'data' has dtype {data.dtype} and shape {data.shape}; speech needs "
                                  f"a 1-D int16 (or float) waveform")
        return data
    if data.dtype.kind != "f":
        raise DataError(path, f"key 'data' has dtype {data.dtype}; {kind} needs floats "
                              f"(convert with .astype(np.float32))")
    if kind == "series" and data.ndim == 1:
        data = data[:, None]  # (N,) -> (N, 1)
    if data.ndim != 2 or (kind == "handwriting" and data.shape[1] != 3):
        want = "(N, 3) rows (dx, dy, pen_up)" if kind == "handwriting" else "(N, D)"
        raise DataError(path, f"key 'data' has shape {data.shape}; {kind} needs {want}")
    return data


def _check_offsets(path, offsets, n_rows):
    """``offsets`` are integers from 0 to len(data), strictly increasing (no empty sequence)."""
    if offsets.dtype.kind not in "iu" or offsets.ndim != 1 or len(offsets) < 2:
        raise DataError(path, f"key 'offsets' must be a 1-D integer array of n_seq + 1 >= 2 entries, got "
                              f"{offsets.dtype} of shape {offsets.shape}")
    offsets = offsets.astype(np.int64)  # signed, so that a decrease shows as a negative step
    if offsets[0] != 0 or offsets[-1] != n_rows:
        raise DataError(path, f"key 'offsets' must run from 0 to len(data) = {n_rows}, "
                              f"got {offsets[0]} to {offsets[-1]}")
    steps = np.diff(offsets)
    if np.any(steps <= 0):
        raise DataError(path, f"key 'offsets' must increase strictly; sequence {np.flatnonzero(steps <= 0)[0]} "
                              f"is empty or negative")
    return offsets


def _check_groups(path, arrays, n_seq):
    """``group`` ids (default: all 0) and ``group_names`` (default: "group0", "group1", ...)."""
    group = arrays.get("group", np.zeros(n_seq, dtype=np.int64))
    if group.dtype.kind not in "iu" or group.shape != (n_seq,):
        raise DataError(path, f"key 'group' must be {n_seq} integers (one per sequence), got {group.dtype} "
                              f"of shape {group.shape}")
    if group.min() < 0:
        raise DataError(path, "key 'group' holds a negative id")
    if "group_names" not in arrays:
        if group.max() < n_seq:  # ids 0..max: at most n_seq default names
            return group.astype(np.int64), [f"group{g}" for g in range(int(group.max()) + 1)]
        # sparse ids (say 10**12): number the distinct ids 0, 1, ... (at most n_seq of them, in increasing
        # order, so splits are unchanged) and name each after its original id, rather than one name per
        # id up to the largest
        ids, compact = np.unique(group, return_inverse=True)
        return compact.reshape(-1).astype(np.int64), [f"group{g}" for g in ids.tolist()]
    names = arrays["group_names"]
    if names.dtype.kind != "U" or names.ndim != 1 or len(names) <= group.max():
        raise DataError(path, f"key 'group_names' must be a 1-D string array naming every id in 'group' "
                              f"(0 to {group.max()}), got {names.dtype} of shape {names.shape}")
    return group.astype(np.int64), [str(n) for n in names]


def _check_names(path, arrays, n_seq):
    if "names" not in arrays:
        return [f"sequence {i}" for i in range(n_seq)]
    names = arrays["names"]
    if names.dtype.kind != "U" or names.shape != (n_seq,):
        raise DataError(path, f"key 'names' must be {n_seq} strings, got {names.dtype} of shape {names.shape}")
    return [str(n) for n in names]


def _check_sample_rate(path, arrays):
    if "sample_rate" not in arrays:
        raise DataError(path, "missing key 'sample_rate' (speech needs its samples per second)")
    rate = arrays["sample_rate"]
    if rate.ndim != 0 or rate.dtype.kind not in "iu" or rate <= 0:
        raise DataError(path, f"key 'sample_rate' must be one positive integer, got {rate.dtype} "
                              f"{rate.tolist()}")
    return int(rate)


def read_wav(path):
    """Read a mono 16-bit PCM ``.wav``: returns (samples (T,) float64 in [-1, 1), sample_rate)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            n_frames = w.getnframes()
            raw = w.readframes(n_frames)
    except (wave.Error, EOFError) as e:
        raise DataError(path, f"not a readable PCM .wav file ({e})") from None
    except RuntimeError:  # what wave's chunk reader raises for a chunk that runs past the chunk holding it
        raise DataError(path, "not a readable PCM .wav file (a chunk declares more bytes than the file "
                              "holds)") from None
    if rate <= 0:  # (a checkpoint trained on it could not be loaded: speech needs its samples per second)
        raise DataError(path, f"sample rate {rate} Hz in the header; a damaged file")
    if width != 2:
        raise DataError(path, f"{8 * width}-bit samples; expected 16-bit PCM")
    if channels != 1:
        raise DataError(path, f"{channels} channels; expected mono")
    declared = _wav_data_size(path)
    if declared is not None and declared % 2:
        raise DataError(path, f"the data chunk holds an odd number of bytes ({declared}); 16-bit PCM needs "
                              f"whole 2-byte samples (a damaged or wrongly written file)")
    if len(raw) != 2 * n_frames:
        raise DataError(path, f"truncated: the data chunk declares {n_frames} samples ({2 * n_frames} bytes) "
                              f"but the file holds only {len(raw)} bytes of them")
    return np.frombuffer(raw, dtype="<i2") / 32768.0, rate


def _wav_data_size(path):
    """The byte count the ``data`` chunk of a RIFF/WAVE file declares (None if no data chunk is found)."""
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            size = int.from_bytes(header[4:8], "little")
            if header[:4] == b"data":
                return size
            f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even length


def write_wav(path, samples, sample_rate=16000):
    """Write a mono 16-bit PCM ``.wav`` from float samples in [-1, 1] (clipped) or int16 samples."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        samples = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(samples.astype("<i2").tobytes())
    return Path(path)


def read_wav_folder(folder, *, sample_rate=None):
    """Every ``.wav`` under ``folder`` (sorted) as a speech `Dataset`; a sub-folder's name is its group.

    All files must share one sample rate: ``sample_rate`` if given, else the first file's.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise DataError(folder, "no .wav files in this folder")
    sequences, group_of_file, expected = [], [], sample_rate
    for file in files:
        samples, rate = read_wav(file)
        expected = rate if expected is None else expected
        if rate != expected:
            raise DataError(file, f"sample rate {rate} Hz; expected {expected} Hz like "
                                  f"{'the first file' if sample_rate is None else 'sample_rate'}")
        if len(samples) == 0:
            raise DataError(file, "holds no samples")
        sequences.append(samples)
        relative = file.relative_to(folder)
        group_of_file.append(relative.parts[0] if len(relative.parts) > 1 else folder.name)
    group_names = list(dict.fromkeys(group_of_file))
    group = np.array([group_names.index(g) for g in group_of_file], dtype=np.int64)
    names = [str(f.relative_to(folder)) for f in files]
    return Dataset(sequences, group, group_names, names, "speech", folder, expected)


# ----------------------------------------------------------------------------------------------------------
# Splitting, framing, normalising
# ----------------------------------------------------------------------------------------------------------


def split_indices(group, *, valid_fraction=0.1, test_fraction=0.1, heldout="utterance",
                  split_seed=0):
    """Deterministic, disjoint (train, valid, test) arrays of sequence numbers (each sorted), the same for the
    same ``split_seed`` (whatever seeds a training's initialisation and noise).

    ``heldout="utterance"`` shuffles the sequences and gives each fraction of them (at least one if the
    fraction is > 0) to validation and test. ``heldout="group"`` does the same with whole groups
    (speakers or writers), so that no validation or test group is seen in training.
    Raises ValueError when there are too few sequences (or groups) to leave some for training.
    """
    if heldout not in HELDOUT:
        raise ValueError(f"heldout: expected 'utterance' or 'group', got {heldout!r}")
    if not (0 <= valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction < 1):
        raise ValueError(f"valid_fraction + test_fraction must lie in [0, 1), got {valid_fraction} + "
                         f"{test_fraction}")
    group = np.asarray(group)
    units = np.arange(len(group)) if heldout == "utterance" else np.unique(group)
    order = np.random.default_rng(split_seed).permutation(units)
    n_test, n_valid = _split_count(test_fraction, len(units)), _split_count(valid_fraction, len(units))
    if n_test + n_valid >= len(units):
        what = "sequence" if heldout == "utterance" else "group"
        raise ValueError(f"only {len(units)} {what}{'s' * (len(units) != 1)}: too few to hold out validation "
                         f"and test {what}s and keep some for training")
    test_units, valid_units = order[:n_test], order[n_test : n_test + n_valid]
    key = np.arange(len(group)) if heldout == "utterance" else group
    test, valid = np.isin(key, test_units), np.isin(key, valid_units)
    return np.flatnonzero(~(test | valid)), np.flatnonzero(valid), np.flatnonzero(test)


def _split_count(fraction, n):
    """round(fraction * n), but at least 1 when the fraction is positive."""
    return 0 if fraction == 0 else max(1, int(round(fraction * n)))


def waveform_to_frames(waveform, frame_size=200):
    """(T_samples,) -> (T_frames, frame_size) non-overlapping frames; a trailing partial frame is dropped."""
    if frame_size < 1:
        raise ValueError(f"frame_size: expected a positive integer, got {frame_size}")
    n = len(waveform) // frame_size
    if n == 0:
        raise ValueError(f"a waveform of {len(waveform)} samples is shorter than one frame of {frame_size}")
    return np.reshape(waveform[: n * frame_size], (n, frame_size))  # (T, F)


def frames_to_waveform(frames):
    """(T_frames, frame_size) -> (T_frames * frame_size,): the frames played one after another."""
    return np.reshape(frames, (-1,))


def offsets_to_positions(offsets):
    """(T, 3) pen offsets (dx, dy, pen_up) -> (T, 3) positions (x, y, pen_up); the pen starts at (0, 0)."""
    positions = np.array(offsets, copy=True)
    positions[:, :2] = np.cumsum(offsets[:, :2], axis=0)
    return positions


def positions_to_offsets(positions):
    """Inverse of `offsets_to_positions`: the first row's offset is its distance from the origin."""
    offsets = np.array(positions, copy=True)
    offsets[1:, :2] = np.diff(positions[:, :2], axis=0)
    return offsets


@dataclass(frozen=True)
class Normalizer:
    """``(x - mean) / std`` on the dimensions where ``scaled`` is True; the others (the pen bit) pass as is.

    Fitted on the training split only, and stored in the checkpoint (`to_arrays`) so that sampling can
    map the model's output back to waveforms or pen strokes (`denormalize`).
    """

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,) all > 0
    scaled: np.ndarray  # (D,) bool: which dimensions are normalised

    def normalize(self, x):
        """(..., D) raw values -> normalised, in x's dtype."""
        return np.where(self.scaled, (x - self.mean) / self.std, x).astype(x.dtype, copy=False)

    def denormalize(self, x):
        """(..., D) normalised values -> raw (waveform in [-1, 1], pen offsets, series units), in x's dtype."""
        return np.where(self.scaled, x * self.std + self.mean, x).astype(x.dtype, copy=False)

    def to_arrays(self):
        """The statistics as a dict of arrays, for a checkpoint: ``mean``, ``std``, ``scaled``."""
        return {"mean": self.mean.copy(), "std": self.std.copy(), "scaled": self.scaled.copy()}

    @classmethod
    def from_arrays(cls, arrays):
        """Inverse of `to_arrays` (extra keys are ignored)."""
        return cls(np.asarray(arrays["mean"], dtype=np.float64), np.asarray(arrays["std"], dtype=np.float64),
                   np.asarray(arrays["scaled"], dtype=bool))


def fit_normalizer(sequences, kind):
    """Statistics of the (T_i, D) training sequences, for data of this ``kind``.

    - speech: one mean and std over all samples, shared by every position in a frame (a sample's position
      within a frame carries no meaning, and per-position statistics would only add noise);
    - handwriting: dx and dy divided by their std but not centred (a zero offset keeps meaning "the pen
      did not move"); the pen bit untouched;
    - series: a mean and std per dimension.
    A dimension that never varies gets std 1.
    """
    rows = np.concatenate(sequences).astype(np.float64)  # (N, D)
    D = rows.shape[1]
    scaled = np.ones(D, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):  # overflow is refused just below
        if kind == "speech":
            mean, std = np.full(D, rows.mean()), np.full(D, rows.std())
        elif kind == "handwriting":
            scaled[2] = False
            mean, std = np.zeros(D), np.concatenate([rows[:, :2].std(axis=0), [1.0]])
        else:
            mean, std = rows.mean(axis=0), rows.std(axis=0)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise ValueError(f"the training statistics overflow (mean up to {np.abs(mean).max():g}, std up to "
                         f"{np.abs(std).max():g}): the values are too large for float64 arithmetic; rescale "
                         f"the data (divide it by a constant) before training")
    if not (std[scaled] > 0).any():
        raise ValueError("the training std is 0 in every dimension (the values never vary, or are so small "
                         "that their squares underflow to 0): nothing to learn; rescale the data "
                         "(multiply it by a constant) or check it")
    return Normalizer(mean, np.where(std > 0, std, 1.0), scaled)


# ----------------------------------------------------------------------------------------------------------
# Everything at once
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Splits:
    """Normalised train/valid/test sequences, each (T_i, D), with what is needed to undo the normalisation."""

    train: list
    valid: list
    test: list
    normalizer: Normalizer  # fitted on `train` only
    kind: str  # "speech" | "handwriting" | "series"
    x_dim: int  # D
    group: np.ndarray  # (n_seq,) group of every sequence of the source
    group_names: list
    train_ids: np.ndarray  # sequence numbers in the source, for each split
    valid_ids: np.ndarray
    test_ids: np.ndarray
    source: Path
    sample_rate: int | None = None  # speech only
    frame_size: int | None = None  # speech only

    def to_arrays(self):
        """The normaliser's arrays plus kind, frame_size and sample_rate (0 when not speech), for a checkpoint."""
        arrays = self.normalizer.to_arrays()
        arrays.update(kind=np.array(self.kind), frame_size=np.array(self.frame_size or 0),
                      sample_rate=np.array(self.sample_rate or 0))
        return arrays


def sequence_path(dataset, i):
    """The file that holds sequence ``i``: its own ``.wav`` in a folder, else the dataset file."""
    return dataset.path / dataset.names[i] if dataset.path.is_dir() else dataset.path


def load_splits(source, *, frame_size=200, valid_fraction=0.1, test_fraction=0.1, heldout="utterance",
                split_seed=0, dtype=np.float32, sample_rate=None):
    """Load ``source`` (a shipped name, an ``.npz`` or a ``.wav`` folder) as normalised `Splits`.

    Speech is cut into non-overlapping frames of ``frame_size`` samples (so D = frame_size); every split is
    normalised with statistics of the training split alone. See `split_indices` for ``heldout`` and
    ``split_seed``.
    """
    if not (isinstance(frame_size, (int, np.integer)) and frame_size >= 1):
        raise ValueError(f"frame_size: expected a positive integer, got {frame_size!r}")
    dataset = load_dataset(source, sample_rate=sample_rate)
    sequences = dataset.sequences
    if dataset.kind == "speech":
        for i, wave_i in enumerate(sequences):
            if len(wave_i) < frame_size:
                raise DataError(sequence_path(dataset, i), f"sequence {i} ({dataset.names[i]}) has "
                                f"{len(wave_i)} samples, fewer than one frame of {frame_size}")
        sequences = [waveform_to_frames(w, frame_size) for w in sequences]  # each (T_i, frame_size)
    try:
        ids = split_indices(dataset.group, valid_fraction=valid_fraction, test_fraction=test_fraction,
                            heldout=heldout, split_seed=split_seed)
    except ValueError as e:
        raise DataError(dataset.path, e) from None
    try:
        normalizer = fit_normalizer([sequences[i] for i in ids[0]], dataset.kind)
    except ValueError as e:
        raise DataError(dataset.path, e) from None
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below
        train, valid, test = ([normalizer.normalize(sequences[i]).astype(dtype) for i in split]
                              for split in ids)
    for name, split, split_ids in (("training", train, ids[0]), ("validation", valid, ids[1]),
                                   ("test", test, ids[2])):
        for i, s in zip(split_ids, split):
            if not np.isfinite(s).all():
                raise DataError(sequence_path(dataset, i), f"sequence {i} ({dataset.names[i]}, {name} split) "
                                f"overflows {np.dtype(dtype).name} once normalised with the training "
                                f"statistics (std {normalizer.std.min():g}); rescale the data")
    speech = dataset.kind == "speech"
    return Splits(train, valid, test, normalizer, dataset.kind, sequences[0].shape[1], dataset.group,
                  dataset.group_names, *ids, source=dataset.path, sample_rate=dataset.sample_rate,
                  frame_size=frame_size if speech else None)


# ----------------------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------------------


def pad_batch(sequences):
    """A list of B arrays (T_i, D) -> x (T, B, D) padded with zeros, mask (T, B) of 1/0; T = max T_i.

    Both come in the sequences' dtype.
    """
    if not sequences:
        raise ValueError("sequences: expected at least one sequence")
    D, dtype = sequences[0].shape[1], sequences[0].dtype
    for i, s in enumerate(sequences):
        if s.ndim != 2 or s.shape[1] != D or s.dtype != dtype or len(s) == 0:
            raise ValueError(f"sequences[{i}]: expected a non-empty ({'T'}, {D}) array of {dtype}, "
                             f"got {s.dtype} of shape {s.shape}")
    T, B = max(len(s) for s in sequences), len(sequences)
    x = np.zeros((T, B, D), dtype=dtype)  # (T, B, D)
    mask = np.zeros((T, B), dtype=dtype)  # (T, B)
    for b, s in enumerate(sequences):
        x[: len(s), b] = s
        mask[: len(s), b] = 1
    return x, mask


def batches_by_length(sequences, batch_size):
    """For evaluation: yields (indices, x, mask), batches of sequences of similar lengths (sorted by length,
    ties in order), so that each batch is padded to little more than its own sequences. Batches of whole
    sequences in their given order can pad a short one to the length of the longest. ``indices`` says which
    of ``sequences`` the batch holds, in its order."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        x, mask = pad_batch([sequences[i] for i in indices])
        yield indices, x, mask


def unpad_batch(x, mask):
    """Inverse of `pad_batch`: (T, B, D), (T, B) -> list of B arrays (T_b, D), T_b = number of 1s in mask."""
    return [x[: int(mask[:, b].sum()), b] for b in range(x.shape[1])]


def random_crop(sequence, max_len, rng):
    """A random window of ``max_len`` consecutive steps (the whole sequence if it is not longer)."""
    if len(sequence) <= max_len:
        return sequence
    start = rng.integers(0, len(sequence) - max_len + 1)
    return sequence[start : start + max_len]


def iterate_batches(sequences, batch_size, rng=None, max_len=None, shuffle=True):
    """Yield ``(x (T, B, D), mask (T, B))`` batches covering every sequence once (the last may be smaller).

    With ``shuffle`` the order is a permutation drawn from ``rng`` (a ``np.random.Generator``); with
    ``max_len`` each longer sequence is replaced by a random crop of ``max_len`` steps (for training).
    """
    if (shuffle or max_len is not None) and rng is None:
        raise ValueError("rng: a np.random.Generator is needed to shuffle or crop")
    if batch_size < 1 or (max_len is not None and max_len < 1):
        raise ValueError(f"batch_size and max_len must be >= 1, got {batch_size} and {max_len}")
    order = rng.permutation(len(sequences)) if shuffle else np.arange(len(sequences))
    for start in range(0, len(order), batch_size):
        batch = [sequences[i] for i in order[start : start + batch_size]]
        if max_len is not None:
            batch = [random_crop(s, max_len, rng) for s in batch]
        yield pad_batch(batch)
