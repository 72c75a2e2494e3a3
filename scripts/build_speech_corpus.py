"""Build a larger real-speech corpus locally: every prompt of the five Asterisk voices, in one `.npz`.

A build-time tool, not part of minivrnn, and its output is never shipped or committed (`corpora/` is in
.gitignore). The shipped `data_samples/speech.npz` holds 20 prompts of each voice (the numbers 0-19, 69 s);
this corpus holds all of them: the same five 16 kHz voices of Debian's `asterisk-core-sounds-{en,es,fr,it,ru}-
g722`, the same four speakers (groups), the same decoding and silence trimming, the same layout
(data_samples/README.md), about 2 hours of speech. Its figures are in docs/corpus.md.

    python3 -m venv /tmp/buildvenv
    /tmp/buildvenv/bin/pip install numpy G722
    /tmp/buildvenv/bin/python scripts/build_speech_corpus.py --out corpora/asterisk-speech.npz
    python -m minivrnn.train --data corpora/asterisk-speech.npz        # in minivrnn's own environment

It needs `apt-get download` and `dpkg-deb` (Debian or Ubuntu; no root needed, nothing is installed; the
.deb files, about 55 MB, are kept in --work-dir and reused) and the PyPI package `G722`, which minivrnn itself
never imports; without it the script stops with one error line giving the pip command.

- Every `.g722` file under each voice folder, sub-folders included (`digits/`, `letters/`, `phonetic/`,
  ...), sorted by relative path, except the `silence/` folder (1-10 s of line noise used as pauses, not
  speech). `names` holds `folder/relative/path` without the suffix, as in the shipped file.
- Decoded and trimmed by the shipped samples' own functions (scripts/build_data_samples.py); a prompt shorter
  than --min-samples after trimming (one 200-sample frame by default) is left out and counted.
- `group` is the speaker: Allison Smith records both the English and the Spanish prompts, so five voices
  give four groups, numbered as in the shipped file.
- The recordings are CC BY-SA 3.0 / CC BY 3.0, not MIT: the file carries its attribution, and the full
  Debian copyright file with the licence texts, in an extra string member `attribution` (the loader ignores
  it). Print it with
  `python -c "import numpy as np; print(np.load('corpora/asterisk-speech.npz')['attribution'])"`.

The same .deb files give the same bytes: prompts are taken in sorted order and nothing is random.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def _sibling(name):
    """Import a script beside this one (scripts/ is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


samples = _sibling("build_data_samples")  # VOICES, SPEAKERS, fetch_debs, decode_g722, trim_silence, ...

REPO = samples.REPO
DEFAULT_OUT = REPO / "corpora" / "asterisk-speech.npz"
FRAME_SIZE = 200  # train's default --frame-size (12.5 ms): the report counts frames of this many samples
MIN_SAMPLES = FRAME_SIZE  # a prompt shorter than one frame could not be trained on
EXCLUDED = ("silence",)  # sub-folders of a voice that hold no speech

# Credits and licences per voice folder, from the packages' copyright file (see data_samples/ATTRIBUTION.md).
CREDITS = {
    "en_US_f_Allison": ("English (US)", "Recorded by Allison Smith (http://www.theivrvoice.com); financial "
                        "contributions by Digium, Inc.", "CC BY-SA 3.0"),
    "es_MX_f_Allison": ("Spanish (Mexico)", "Recorded by Allison Smith (http://www.theivrvoice.com); financial "
                        "contributions by Digium, Inc.", "CC BY-SA 3.0"),
    "fr_CA_f_June": ("French (Canada)", "Recorded by June Wallack (http://www.junewallack.com); translated into "
                     "French by Clod Patry, Kristopher Lalletti and June Wallack; financial contributions by "
                     "Digium, Inc., Unlimitel and BGM Informatique", "CC BY-SA 3.0"),
    "it_IT_m_Carlo": ("Italian", "Recorded by Carlo Flora (http://www.carloflora.com, "
                      "http://www.segreterietelefoniche.it); translated by Silvia Petrin", "CC BY 3.0"),
    "ru_RU_f_IvrvoiceRU": ("Russian", "Provided by Maxim Topal (http://www.ivrvoice.ru); the speaker is not "
                           "named", "CC BY 3.0"),
}
COPYRIGHT = "usr/share/doc/asterisk-core-sounds-en-g722/copyright"  # the same file in all five packages


def voice_prompts(folder):
    """Every prompt of one voice folder: sorted relative paths without `.g722`, the EXCLUDED folders left out."""
    prompts = []
    for path in folder.rglob("*.g722"):
        relative = path.relative_to(folder)
        if path.is_file() and relative.parts[0] not in EXCLUDED:
            prompts.append(relative.with_suffix("").as_posix())
    return sorted(prompts)


def build_corpus(sounds, attribution, *, decode=None, min_samples=MIN_SAMPLES):
    """Every prompt of the VOICES under `sounds`, decoded and trimmed: (arrays in the documented layout, report).

    `decode` turns a `.g722` path into int16 samples (default: the G722 package's decoder). `report` holds one
    dict per voice: folder, speaker, prompts (found), kept, samples (kept), skipped (names too short).
    """
    decode = decode or samples.decode_g722
    waves, group, names, report = [], [], [], []
    for _, folder, speaker in samples.VOICES:
        if not (sounds / folder).is_dir():
            raise FileNotFoundError(f"{sounds / folder}: voice folder not found")
        prompts = voice_prompts(sounds / folder)
        skipped, kept_samples = [], 0
        for prompt in prompts:
            wave = decode(sounds / folder / f"{prompt}.g722")
            if len(wave) >= samples.TRIM_FRAME:  # trim_silence needs one 10 ms frame (an empty file has none)
                wave = samples.trim_silence(wave)
            if len(wave) < min_samples:
                skipped.append(f"{folder}/{prompt}")
                continue
            waves.append(wave)
            group.append(samples.SPEAKERS.index(speaker))
            names.append(f"{folder}/{prompt}")
            kept_samples += len(wave)
        report.append(dict(folder=folder, speaker=speaker, prompts=len(prompts), kept=len(prompts) - len(skipped),
                           samples=kept_samples, skipped=skipped))
    arrays = samples.speech_arrays(waves, group, names)
    arrays["attribution"] = np.array(attribution)
    return arrays, report


def attribution_text(versions, copyright_text, min_samples=MIN_SAMPLES):
    """The corpus's attribution: sources and versions, changes made, credits and licences, then the full
    Debian copyright file (which holds the licence texts)."""
    lines = [
        "Asterisk speech corpus, built by minivrnn's scripts/build_speech_corpus.py. These recordings are NOT",
        "under minivrnn's MIT licence, but under the licences below.",
        "",
        "Adapted from the Asterisk core sound prompts (upstream: http://downloads.asterisk.org/pub/telephony/"
        "asterisk/), as packaged by Debian: " + ", ".join(f"{p} {versions.get(p, '(version unknown)')}"
                                                         for p, _, _ in samples.VOICES) + ".",
        f"Changes made: every prompt of each voice except the {', '.join(EXCLUDED)}/ fillers, decoded from G.722 "
        f"to 16-bit PCM, leading and trailing silence trimmed, prompts shorter than {min_samples} samples after "
        "trimming left out, stored together in one NumPy file. The adapted recordings are distributed under the "
        "same licences as their sources.",
        "",
    ]
    for _, folder, speaker in samples.VOICES:
        language, credit, licence = CREDITS[folder]
        lines.append(f"- {folder}: {language}, speaker {speaker}. {credit}. Licence: {licence}.".replace("..", "."))
    lines += [
        "",
        "Copyright: 2003-2010 Allison Smith; 2006-2008 June Wallack; 2012 Carlo Flora; 2010 Maxim Topal.",
        "Licences: Creative Commons Attribution-ShareAlike 3.0 Unported (CC BY-SA 3.0,",
        "https://creativecommons.org/licenses/by-sa/3.0/) and Creative Commons Attribution 3.0 Unported",
        "(CC BY 3.0, https://creativecommons.org/licenses/by/3.0/).",
    ]
    if copyright_text:
        lines += ["", "The packages' Debian copyright file, with the full licence texts, follows.", "",
                  copyright_text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def write_npz(path, arrays):
    """Write a compressed `.npz` through a temporary file beside it, so an interrupted build leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with open(part, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def print_report(path, arrays, report, min_samples):
    """What went in: per voice, then in all."""
    rate = samples.SAMPLE_RATE
    for r in report:
        print(f"  {r['folder']:<20} {r['speaker']:<26} {r['kept']:4d} of {r['prompts']:4d} prompts, "
              f"{r['samples'] / rate:7.1f} s" + (f", skipped (< {min_samples} samples after trimming): "
                                                  f"{', '.join(r['skipped'])}" if r["skipped"] else ""))
    lengths = np.diff(arrays["offsets"])
    frames = int(np.sum(lengths // FRAME_SIZE))
    print(f"wrote {samples._show(path)}: {path.stat().st_size:,} bytes, {len(lengths)} sequences "
          f"({sum(len(r['skipped']) for r in report)} skipped), {int(lengths.sum()):,} samples "
          f"({lengths.sum() / rate / 60:.1f} min), {lengths.min() / rate:.2f}-{lengths.max() / rate:.2f} s each "
          f"(mean {lengths.mean() / rate:.2f} s), {frames:,} frames of {FRAME_SIZE} samples, "
          f"{len(arrays['group_names'])} speakers")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/minivrnn-data-build"),
                        help="where the .deb files are downloaded and unpacked (reused when present)")
    parser.add_argument("--min-samples", type=int, default=MIN_SAMPLES,
                        help="leave out prompts shorter than this after trimming (keep it >= the --frame-size "
                             "you will train with)")
    args = parser.parse_args(argv)
    if args.out.suffix != ".npz":
        parser.error(f"--out: expected a path ending in .npz, got {args.out}")
    if args.min_samples < 1:
        parser.error(f"--min-samples: expected a positive integer, got {args.min_samples}")
    if importlib.util.find_spec("G722") is None:
        print(f"error: the PyPI package G722 (the G.722 decoder, needed at build time only) is missing; install "
              f"it with: {sys.executable} -m pip install G722", file=sys.stderr)
        return 2

    args.work_dir.mkdir(parents=True, exist_ok=True)
    packages = [package for package, _, _ in samples.VOICES]
    print(f"fetching Debian packages into {args.work_dir}")
    try:
        root = samples.fetch_debs(args.work_dir, packages)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"error: could not download or unpack the packages ({e}); this needs apt-get download and "
              f"dpkg-deb (Debian or Ubuntu)", file=sys.stderr)
        return 2
    versions = {p: sorted(args.work_dir.glob(f"{p}_*.deb"))[-1].name.split("_")[1] for p in packages}
    attribution = attribution_text(versions, (root / COPYRIGHT).read_text(encoding="utf-8"), args.min_samples)

    print("decoding and trimming every prompt")
    arrays, report = build_corpus(root / samples.SOUNDS, attribution, min_samples=args.min_samples)
    write_npz(args.out, arrays)
    print_report(args.out, arrays, report, args.min_samples)
    print(f"train on it with: python -m minivrnn.train --data {samples._show(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
