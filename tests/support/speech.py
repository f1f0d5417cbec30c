"""Helpers for tests on real speech: the bundled clips in ``tests/data/speech``, text normalisation, WER."""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from streaming.audio import SAMPLE_RATE, read_wav

AUDIO_DIR = Path(__file__).resolve().parents[1] / "data" / "speech"


@dataclass(frozen=True)
class ClipInfo:
    """One row of ``manifest.tsv``."""

    filename: str
    duration_s: float
    speech_end_s: float
    reference_text: str
    speaker: str


@cache
def _manifest_rows() -> tuple[ClipInfo, ...]:
    with open(AUDIO_DIR / "manifest.tsv", newline="", encoding="utf-8") as handle:
        return tuple(
            ClipInfo(
                filename=row["filename"],
                duration_s=float(row["duration_s"]),
                speech_end_s=float(row["speech_end_s"]),
                reference_text=row["reference_text"],
                speaker=row["speaker_or_source"],
            )
            for row in csv.DictReader(handle, delimiter="\t")
        )


def manifest() -> list[ClipInfo]:
    """Every clip of the shared corpus, in manifest order."""
    return list(_manifest_rows())


def clip_info(name: str) -> ClipInfo:
    """The manifest row of clip ``name`` (with or without ``.wav``)."""
    filename = name if name.endswith(".wav") else f"{name}.wav"
    return next(info for info in manifest() if info.filename == filename)


def load_clip(name: str) -> np.ndarray:
    """The int16 16 kHz samples of clip ``name`` (with or without ``.wav``)."""
    filename = name if name.endswith(".wav") else f"{name}.wav"
    samples, rate = read_wav(AUDIO_DIR / filename)
    assert rate == SAMPLE_RATE, f"{filename} is {rate} Hz"
    return samples


def silence(seconds: float) -> np.ndarray:
    """Digital silence, int16 at 16 kHz."""
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def noise(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    """White noise with the given RMS (in int16 units), int16 at 16 kHz."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, rms, round(seconds * SAMPLE_RATE))
    return np.clip(values, -32768, 32767).astype(np.int16)


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
_AND_IN_NUMBER = re.compile(rf"\b(hundred|thousand|million) and (?=(?:{'|'.join(_ONES[1:] + _TENS[2:])})\b)")
"""The "and" of "three hundred and sixty-six", which reads "366" as much as "three hundred sixty-six" does."""


def _cardinal(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + _cardinal(rest))
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return _cardinal(thousands) + " thousand" + ("" if rest == 0 else " " + _cardinal(rest))
    millions, rest = divmod(n, 1_000_000)
    return _cardinal(millions) + " million" + ("" if rest == 0 else " " + _cardinal(rest))


def _spoken_number(digits: str) -> str:
    """A number as read aloud; four-digit years are read in pairs (1455 -> fourteen fifty five)."""
    n = int(digits)
    if len(digits) == 4 and 1100 <= n <= 1999:
        high, low = divmod(n, 100)
        tail = "hundred" if low == 0 else ("oh " + _ONES[low] if low < 10 else _cardinal(low))
        return f"{_cardinal(high)} {tail}"
    return _cardinal(n)


def _ordinal(digits: str) -> str:
    words = _spoken_number(digits).split()
    last = words[-1]
    if last in _ORDINALS:
        words[-1] = _ORDINALS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def normalize_text(text: str) -> str:
    """Lower-case words without punctuation or accents, digits spelled out, so transcripts compare
    fairly ("Lübeck" and "Lubeck" are one name; a letter outside a-z would split a word in two)."""
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: " " + _ordinal(m.group(1)) + " ", text)
    text = re.sub(r"\d+", lambda m: " " + _spoken_number(m.group(0)) + " ", text)
    text = re.sub(r"\b(mrs|mr|dr)\b\.?", lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.replace("'", "").replace("\u2019", "")
    text = re.sub(r"[^a-z]+", " ", text)
    return " ".join(_AND_IN_NUMBER.sub(r"\1 ", " ".join(text.split())).split())


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus-level WER of normalised hypotheses against normalised references."""
    assert len(refs) == len(hyps), "one hypothesis per reference"
    errors = words = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        ref_words = normalize_text(ref).split()
        errors += _edit_distance(ref_words, normalize_text(hyp).split())
        words += len(ref_words)
    return errors / max(words, 1)


def speech_only(name: str = "ps_goforward") -> np.ndarray:
    """A clip's speech alone, 50 ms either side of its loud frames (its quiet lead and tail cut),
    so a test's pauses are exactly the silence it adds."""
    clip = load_clip(name)
    frames = clip[: len(clip) // 320 * 320].reshape(-1, 320).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(rms > 0.05 * rms.max())  # within 26 dB of the loudest frame
    return clip[max(0, loud[0] * 320 - 800) : (loud[-1] + 1) * 320 + 800]
