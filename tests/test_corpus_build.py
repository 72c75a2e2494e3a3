"""scripts/build_speech_corpus.py, offline: its assembly on a fake unpacked sound tree, no apt-get, no G722.

The fake `.g722` files hold raw int16 samples, and a fake decoder reads them back, so the test knows every
waveform the real decoder would have produced and can check what the corpus keeps, skips and names.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from minivrnn.data import load_dataset, load_splits

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_speech_corpus.py"


@pytest.fixture(scope="module")
def corpus():
    spec = importlib.util.spec_from_file_location("build_speech_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_decode(path):
    return np.frombuffer(Path(path).read_bytes(), dtype=np.int16)


def utterance(rng, n_loud, n_quiet=800):
    """Quiet - loud - quiet: trimming keeps the loud part and a 20 ms margin on either side (whole 10 ms
    frames of 160 samples: n_quiet and n_loud are multiples of 160 but in the "short" prompt)."""
    quiet = lambda: rng.integers(-2, 3, n_quiet)
    return np.concatenate([quiet(), rng.integers(-8000, 8000, n_loud), quiet()]).astype(np.int16)


# Per voice folder: prompt -> number of loud samples (None: an empty file). The silence/ folder is left out;
# "short" trims to its one loud 10 ms frame plus the margins, 160 + 2 x 320 = 800 samples, too short for
# min_samples=1000 (but not for the default 200); the empty file is too short for any; the rest are kept.
TREE = {
    "en_US_f_Allison": {"digits/1": 1600, "digits/0": 3200, "vm-intro": 4800, "silence/1": 16000},
    "es_MX_f_Allison": {"letters/a": 2400, "hola": 1600},
    "fr_CA_f_June": {"bonjour": 2080, "short": 50},
    "it_IT_m_Carlo": {"ciao": 3040, "phonetic/a_p": 1280},
    "ru_RU_f_IvrvoiceRU": {"is": None, "privet": 2560},
}


@pytest.fixture()
def sounds(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "sounds"
    for folder, prompts in TREE.items():
        for prompt, n_loud in prompts.items():
            path = root / folder / f"{prompt}.g722"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"" if n_loud is None else utterance(rng, n_loud).tobytes())
    (root / "en_US_f_Allison" / "README.txt").write_text("not a prompt")
    return root


def build(corpus, sounds, out, min_samples=1000):
    arrays, report = corpus.build_corpus(sounds, corpus.attribution_text({}, "FULL LICENCE TEXTS", min_samples),
                                         decode=fake_decode, min_samples=min_samples)
    corpus.write_npz(out, arrays)
    return arrays, report


def test_the_corpus_loads_with_speakers_names_offsets_and_skips(corpus, sounds, tmp_path):
    arrays, report = build(corpus, sounds, tmp_path / "c" / "corpus.npz")
    dataset = load_dataset(tmp_path / "c" / "corpus.npz")
    assert dataset.kind == "speech" and dataset.sample_rate == 16000
    assert dataset.names == [
        "en_US_f_Allison/digits/0", "en_US_f_Allison/digits/1", "en_US_f_Allison/vm-intro",
        "es_MX_f_Allison/hola", "es_MX_f_Allison/letters/a",
        "fr_CA_f_June/bonjour",
        "it_IT_m_Carlo/ciao", "it_IT_m_Carlo/phonetic/a_p",
        "ru_RU_f_IvrvoiceRU/privet",
    ]  # sorted within a voice, silence/ and the too-short prompts left out
    # English and Spanish are one speaker, as in the shipped speech.npz
    assert dataset.group_names == ["Allison Smith", "June Wallack", "Carlo Flora", "IvrvoiceRU (Maxim Topal)"]
    assert dataset.group.tolist() == [0, 0, 0, 0, 0, 1, 2, 2, 3]
    # each waveform is its loud part plus the 20 ms (320-sample) margins: trimmed like the shipped prompts
    loud = {f"{folder}/{prompt}": n for folder, prompts in TREE.items() for prompt, n in prompts.items()}
    assert [len(s) for s in dataset.sequences] == [loud[name] + 640 for name in dataset.names]
    assert np.diff(arrays["offsets"]).tolist() == [len(s) for s in dataset.sequences]
    assert arrays["data"].dtype == np.int16
    assert [(r["prompts"], r["kept"], r["skipped"]) for r in report] == [
        (3, 3, []), (2, 2, []), (2, 1, ["fr_CA_f_June/short"]), (2, 2, []), (2, 1, ["ru_RU_f_IvrvoiceRU/is"])]
    assert report[0]["samples"] == sum(loud[n] + 640 for n in dataset.names[:3])
    attribution = str(np.load(tmp_path / "c" / "corpus.npz")["attribution"])
    for credit in ("Allison Smith", "June Wallack", "Carlo Flora", "Maxim Topal", "CC BY-SA 3.0", "CC BY 3.0",
                   "FULL LICENCE TEXTS", "shorter than 1000 samples"):
        assert credit in attribution

    splits = load_splits(tmp_path / "c" / "corpus.npz", frame_size=200, heldout="group")
    assert splits.x_dim == 200 and len(splits.valid) and len(splits.test)
    held = set(splits.group[splits.valid_ids]) | set(splits.group[splits.test_ids])
    assert held.isdisjoint(splits.group[splits.train_ids])


def test_the_default_minimum_is_one_frame(corpus, sounds, tmp_path):
    _, report = build(corpus, sounds, tmp_path / "corpus.npz", min_samples=corpus.MIN_SAMPLES)
    assert corpus.MIN_SAMPLES == 200  # "short" (800 samples) is kept; the empty file is not
    assert [r["skipped"] for r in report] == [[], [], [], [], ["ru_RU_f_IvrvoiceRU/is"]]


def test_the_build_is_deterministic(corpus, sounds, tmp_path):
    build(corpus, sounds, tmp_path / "a.npz")
    build(corpus, sounds, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_a_missing_voice_folder_is_named(corpus, sounds):
    (sounds / "it_IT_m_Carlo" / "ciao.g722").unlink()
    (sounds / "it_IT_m_Carlo" / "phonetic" / "a_p.g722").unlink()
    (sounds / "it_IT_m_Carlo" / "phonetic").rmdir()
    (sounds / "it_IT_m_Carlo").rmdir()
    with pytest.raises(FileNotFoundError, match="it_IT_m_Carlo"):
        corpus.build_corpus(sounds, "", decode=fake_decode)


def test_without_g722_one_error_line_and_exit_2(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "G722", None)  # as if not installed: nothing is downloaded
    assert corpus.main(["--out", str(tmp_path / "corpus.npz"), "--work-dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "pip install G722" in err
    assert not (tmp_path / "work").exists() and not (tmp_path / "corpus.npz").exists()
