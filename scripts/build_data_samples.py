"""Rebuild the shipped data samples in data_samples/ from their public sources.

This script is a build-time tool, not part of minivrnn: the package and its tests only read the `.npz`
files it writes, and never download anything. Run it when you want to check or change how the samples
were made:

    python3 -m venv /tmp/buildvenv
    /tmp/buildvenv/bin/pip install numpy G722 statsmodels
    /tmp/buildvenv/bin/python scripts/build_data_samples.py

It needs `apt-get download` and `dpkg-deb` (Debian or Ubuntu; no root needed, nothing is installed) for
three sources, and two PyPI packages that minivrnn itself never imports:

- speech:      Debian's `asterisk-core-sounds-{en,es,fr,it,ru}-g722` (studio prompts at 16 kHz, in G.722),
               decoded with the PyPI package `G722`; we keep the spoken numbers 0-19 of every voice.
- handwriting: Debian's `hershey-fonts-data` (the Hershey "script simplex" font, `scripts.jhf`), laid out
               as words and written by 20 synthetic writers; pen strokes, not real handwriting.
- series:      the weekly Mauna Loa CO2 record that ships inside the `statsmodels` wheel.

Every random choice comes from one seeded generator, so the same sources give the same arrays. All three
files share one layout, described in data_samples/README.md:
`data`, `offsets`, `group`, `group_names`, `kind`, `names` (and `sample_rate` for speech).
"""
import argparse
import glob
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 16000

# ----------------------------------------------------------------------------------------------------------
# Speech: Asterisk prompts
# ----------------------------------------------------------------------------------------------------------

# (Debian package, folder under /usr/share/asterisk/sounds, speaker (= group) name).
# The Spanish prompts are recorded by the same speaker as the English ones (Allison Smith; the folder is
# es_MX_f_Allison and the copyright file credits her), so there are four speakers, not five.
VOICES = [
    ("asterisk-core-sounds-en-g722", "en_US_f_Allison", "Allison Smith"),
    ("asterisk-core-sounds-es-g722", "es_MX_f_Allison", "Allison Smith"),
    ("asterisk-core-sounds-fr-g722", "fr_CA_f_June", "June Wallack"),
    ("asterisk-core-sounds-it-g722", "it_IT_m_Carlo", "Carlo Flora"),
    ("asterisk-core-sounds-ru-g722", "ru_RU_f_IvrvoiceRU", "IvrvoiceRU (Maxim Topal)"),
]
SPEAKERS = list(dict.fromkeys(name for _, _, name in VOICES))  # group id -> speaker, in order of first voice
SOUNDS = "usr/share/asterisk/sounds"  # where the packages put the voice folders, under the unpacked root
PROMPTS = [f"digits/{i}" for i in range(20)]  # the numbers zero to nineteen, in each language

TRIM_FRAME = 160  # 10 ms at 16 kHz: the unit in which silence is measured
TRIM_DB = -40.0  # a 10 ms frame this far below the utterance's loudest frame counts as silence
TRIM_MARGIN = 320  # keep 20 ms of the silence on either side, so no onset is clipped


def fetch_debs(work, packages):
    """`apt-get download` each package into `work` (skipped when its .deb is already there) and unpack it."""
    root = work / "root"
    for package in packages:
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", package], cwd=work, check=True)
            debs = sorted(work.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
        print(f"  unpacked {debs[-1].name}")
    return root


def decode_g722(path):
    """Decode a raw 64 kbit/s G.722 file to int16 samples at 16 kHz."""
    import G722  # build-time only

    with open(path, "rb") as f:
        return np.asarray(G722.G722(SAMPLE_RATE, 64000).decode(f.read()), dtype=np.int16)


def trim_silence(samples):
    """Cut leading and trailing silence: frames more than 40 dB below the loudest 10 ms frame."""
    n = len(samples) // TRIM_FRAME
    frames = samples[: n * TRIM_FRAME].astype(np.float64).reshape(n, TRIM_FRAME)
    rms = np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > TRIM_DB)
    start = max(loud[0] * TRIM_FRAME - TRIM_MARGIN, 0)
    stop = min((loud[-1] + 1) * TRIM_FRAME + TRIM_MARGIN, len(samples))
    return samples[start:stop]


def build_speech(root):
    """The spoken numbers 0-19 of five voices (four speakers), trimmed, as one int16 waveform per prompt."""
    sounds = root / SOUNDS
    waves, group, names = [], [], []
    for _, folder, speaker in VOICES:
        for prompt in PROMPTS:
            waves.append(trim_silence(decode_g722(sounds / folder / f"{prompt}.g722")))
            group.append(SPEAKERS.index(speaker))
            names.append(f"{folder}/{prompt}")
    return speech_arrays(waves, group, names)


def speech_arrays(waves, group, names):
    """int16 waveforms of the VOICES' speakers, in the documented layout (build_speech_corpus.py too)."""
    return dict(
        data=np.concatenate(waves),
        offsets=_offsets(waves),
        group=np.array(group, dtype=np.int64),
        group_names=np.array(SPEAKERS),
        names=np.array(names),
        kind=np.array("speech"),
        sample_rate=np.array(SAMPLE_RATE, dtype=np.int64),
    )


# ----------------------------------------------------------------------------------------------------------
# Handwriting: Hershey script font, written by synthetic writers
# ----------------------------------------------------------------------------------------------------------

N_WRITERS = 20
LINES_PER_WRITER = 16
MAX_LINE_CHARS = 14
QUANTUM = 1.0 / 64  # pen positions are rounded to this grid (in font units), so the file compresses well
JOIN_GAP = 3.0  # strokes whose ends are this close (font units) are written without lifting the pen

WORDS = """
a about after again air all also an and animal another answer any are around as ask at away back be
because been before began best between big both boy but by call came can change children city close
come could country cut day did different do does dog down each earth end even every eye face far father
feet few find first follow food for form found four from get girl give go good got great group grow had
hand hard has have he head hear help her here high him his home house how idea if important in into is
it just keep kind know land large last late learn leave left let letter life light like line list little
live long look made make man many may me mean men might mile miss more most mother mountain move much
must my name near need never new next night no not now number of off often old on once one only open or
other our out over own page paper part people picture place plant play point put question quick quite
read real right river room run said same saw say school sea second see seem sentence set she should show
side small so some something sometimes song soon sound spell start state still stop story study such sun
take talk tell than that the their them then there these they thing think this those thought three
through time to together too took tree try turn two under until up us use very walk want was watch water
way we well went were what when where which while white who why will with without word work world would
write year you young your
""".split()


def parse_jhf(path):
    """Read a Hershey `.jhf` font: {character: (left, right, strokes)}, strokes as (n, 2) arrays.

    Each line is one glyph, in ASCII order from the space: a 5-character glyph number, a 3-character
    vertex count, then pairs of characters, each coordinate being its character code minus ord("R").
    The first pair holds the glyph's left and right edges; the pair " R" lifts the pen. y grows downwards.
    """
    glyphs = {}
    lines = [line for line in Path(path).read_text().split("\n") if line.strip()]
    for code, line in enumerate(lines, start=32):
        n = int(line[5:8])
        pairs = [line[8 + 2 * i : 10 + 2 * i] for i in range(n)]
        left, right = (ord(c) - ord("R") for c in pairs[0])
        strokes, current = [], []
        for pair in pairs[1:]:
            if pair == " R":
                strokes.append(current)
                current = []
            else:
                current.append((ord(pair[0]) - ord("R"), ord(pair[1]) - ord("R")))
        strokes.append(current)
        glyphs[chr(code)] = (left, right, [np.array(s, dtype=np.float64) for s in strokes if s])
    return glyphs


def layout_line(text, glyphs, letter_gap, word_gap):
    """Place the glyphs of `text` side by side: a list of strokes in font units, y up, baseline near 0."""
    strokes, x = [], 0.0
    for char in text:
        left, right, glyph_strokes = glyphs[char]
        if char == " ":
            x += (right - left) * word_gap
            continue
        for s in glyph_strokes:
            strokes.append(np.column_stack([s[:, 0] - left + x, -s[:, 1]]))
        x += right - left + letter_gap
    return _join_close_strokes(strokes)


def _join_close_strokes(strokes):
    """Merge a stroke into the previous one when it starts where that one ended (joined-up script)."""
    joined = [strokes[0]]
    for s in strokes[1:]:
        if np.hypot(*(s[0] - joined[-1][-1])) < JOIN_GAP:
            joined[-1] = np.vstack([joined[-1], s])
        else:
            joined.append(s)
    return joined


def resample_stroke(stroke, step):
    """Points every `step` units of arc length along a polyline (a pen moving at constant speed)."""
    seg = np.hypot(*np.diff(stroke, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] == 0.0:
        return stroke[:1]
    n = max(int(np.ceil(arc[-1] / step)) + 1, 2)
    s = np.linspace(0.0, arc[-1], n)
    return np.column_stack([np.interp(s, arc, stroke[:, 0]), np.interp(s, arc, stroke[:, 1])])


def smooth_noise(rng, n, scale, width):
    """(n, 2) Gaussian noise smoothed by a Gaussian kernel of `width` points: a slow, shaky hand."""
    half = int(3 * width)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))  # keeps the smoothed noise's std equal to `scale`
    white = rng.normal(0.0, scale, size=(n + 2 * half, 2))
    return np.column_stack([np.convolve(white[:, k], kernel, mode="valid") for k in range(2)])


def writer_style(rng):
    """One synthetic writer: slant, size, spacing, speed, shakiness and baseline wobble."""
    return dict(
        slant=rng.uniform(-0.1, 0.5),  # x += slant * y: a right-leaning hand for slant > 0
        scale=rng.uniform(0.8, 1.25),
        stretch=rng.uniform(0.85, 1.2),  # extra horizontal scale: narrow or wide letters
        letter_gap=rng.uniform(-1.0, 1.5),
        word_gap=rng.uniform(0.8, 1.4),
        step=rng.uniform(1.3, 2.0),  # arc length between pen samples: how fast the pen moves
        jitter=rng.uniform(0.1, 0.3),  # std of the smooth jitter, font units
        jitter_width=rng.uniform(3.0, 8.0),  # its smoothness, in points
        wobble=rng.uniform(0.3, 1.5),  # amplitude of the baseline wobble
        wavelength=rng.uniform(60.0, 200.0),  # its wavelength along the line
    )


def write_line(text, glyphs, style, rng):
    """Write `text` in `style`: (T, 3) rows (x, y, pen_up), pen_up = 1 on the last point of each stroke."""
    strokes = layout_line(text, glyphs, style["letter_gap"], style["word_gap"])
    phase, tilt = rng.uniform(0, 2 * np.pi), rng.normal(0.0, 0.02)
    rows = []
    for s in strokes:
        x = style["scale"] * style["stretch"] * (s[:, 0] + style["slant"] * s[:, 1])
        y = style["scale"] * s[:, 1]
        y = y + style["wobble"] * np.sin(2 * np.pi * x / style["wavelength"] + phase) + tilt * x
        points = resample_stroke(np.column_stack([x, y]), style["step"] * rng.uniform(0.9, 1.1))
        points = points + smooth_noise(rng, len(points), style["jitter"], style["jitter_width"])
        pen = np.zeros((len(points), 1))
        pen[-1] = 1.0
        rows.append(np.hstack([points, pen]))
    rows = np.vstack(rows)
    rows[:, :2] = np.round((rows[:, :2] - rows[0, :2]) / QUANTUM) * QUANTUM  # start at the origin
    return rows


def random_line(rng):
    """A few random words, at most MAX_LINE_CHARS characters; now and then capitalised."""
    words = [str(rng.choice(WORDS))]
    while True:
        word = str(rng.choice(WORDS))
        if len(" ".join(words + [word])) > MAX_LINE_CHARS:
            break
        words.append(word)
    text = " ".join(words)
    return text.capitalize() if rng.random() < 0.3 else text


def build_handwriting(root, seed):
    """20 synthetic writers x 16 lines of the Hershey script font, as (dx, dy, pen_up) float32 rows."""
    glyphs = parse_jhf(root / "usr/share/hershey-fonts/scripts.jhf")
    text_rng, hand_rng = np.random.default_rng(seed).spawn(2)  # the texts do not depend on the styles
    sequences, group, names = [], [], []
    for writer in range(N_WRITERS):
        style = writer_style(hand_rng)
        for _ in range(LINES_PER_WRITER):
            text = random_line(text_rng)
            rows = write_line(text, glyphs, style, hand_rng)
            offsets = np.vstack([[0.0, 0.0, 0.0], np.diff(rows, axis=0)])
            offsets[:, 2] = rows[:, 2]
            sequences.append(offsets.astype(np.float32))
            group.append(writer)
            names.append(text)
    return dict(
        data=np.concatenate(sequences),
        offsets=_offsets(sequences),
        group=np.array(group, dtype=np.int64),
        group_names=np.array([f"writer{w:02d}" for w in range(N_WRITERS)]),
        names=np.array(names),
        kind=np.array("handwriting"),
    )


# ----------------------------------------------------------------------------------------------------------
# Series: Mauna Loa CO2
# ----------------------------------------------------------------------------------------------------------

SERIES_CHUNK = 208  # weeks: four years per sequence


def build_series():
    """Weekly Mauna Loa CO2 (ppm, 1958-2001), gaps filled by linear interpolation, cut into 4-year pieces."""
    from statsmodels.datasets import co2  # build-time only

    frame = co2.load_pandas().data
    values = frame["co2"].to_numpy(dtype=np.float64)
    weeks = np.arange(len(values))
    known = np.isfinite(values)
    values = np.interp(weeks, weeks[known], values[known])
    starts = list(range(0, len(values), SERIES_CHUNK))
    pieces = [values[s : s + SERIES_CHUNK, None].astype(np.float32) for s in starts]
    dates = [str(frame.index[s].date()) for s in starts]
    print(f"  co2: {len(values)} weeks, {np.sum(~known)} missing weeks filled by linear interpolation")
    return dict(
        data=np.concatenate(pieces),
        offsets=_offsets(pieces),
        group=np.zeros(len(pieces), dtype=np.int64),
        group_names=np.array(["Mauna Loa CO2 (ppm, weekly)"]),
        names=np.array([f"weeks from {d}" for d in dates]),
        kind=np.array("series"),
    )


# ----------------------------------------------------------------------------------------------------------
# Writing and reporting
# ----------------------------------------------------------------------------------------------------------


def _offsets(sequences):
    """Row where each sequence starts in the concatenated `data`, plus the total: (n_seq + 1,) int64."""
    return np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)


def _show(path):
    """A path relative to the repository when it is inside it."""
    resolved = path.resolve()
    return resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else path


def save(path, arrays):
    """Write one compressed `.npz` and print what is in it."""
    np.savez_compressed(path, **arrays)
    lengths = np.diff(arrays["offsets"])
    data = arrays["data"]
    x_dim = 1 if data.ndim == 1 else data.shape[1]
    print(
        f"wrote {_show(path)}: {path.stat().st_size:,} bytes, "
        f"{len(lengths)} sequences, lengths {lengths.min()}-{lengths.max()} (mean {lengths.mean():.0f}), "
        f"data {data.shape} {data.dtype}, D = {x_dim}, {len(arrays['group_names'])} groups"
    )


def copy_licences(root, out):
    """Copy the Debian copyright files (which hold the full licence texts) beside the data."""
    licences = out / "licenses"
    licences.mkdir(exist_ok=True)
    for package, target in [
        ("asterisk-core-sounds-en-g722", "asterisk-core-sounds.copyright"),
        ("hershey-fonts-data", "hershey-fonts-data.copyright"),
    ]:
        shutil.copyfile(root / f"usr/share/doc/{package}/copyright", licences / target)
        print(f"wrote {_show(licences / target)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/minivrnn-data-build"),
                        help="where the .deb files are downloaded and unpacked (reused when present)")
    parser.add_argument("--out", type=Path, default=REPO / "data_samples", help="where the .npz files go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic writers")
    args = parser.parse_args()

    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"fetching Debian packages into {args.work_dir}")
    root = fetch_debs(args.work_dir, [package for package, _, _ in VOICES] + ["hershey-fonts-data"])

    print("building speech")
    save(args.out / "speech.npz", build_speech(root))
    print("building handwriting")
    save(args.out / "handwriting.npz", build_handwriting(root, args.seed))
    print("building series")
    save(args.out / "series.npz", build_series())
    copy_licences(root, args.out)
    total = sum(os.path.getsize(p) for p in glob.glob(str(args.out / "**" / "*"), recursive=True)
                if os.path.isfile(p))
    print(f"{_show(args.out)}: {total:,} bytes in all")


if __name__ == "__main__":
    main()
