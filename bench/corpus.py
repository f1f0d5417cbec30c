"""The bundled speech corpus (``tests/data/speech``) as bench clips: samples, speech end, reference text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest

import numpy as np

from streaming.audio import SAMPLE_RATE
from tests.support.speech import load_clip, manifest, word_error_rate

__all__ = ["Clip", "bench_order", "load_clips", "word_error_rate"]


@dataclass(frozen=True)
class Clip:
    """One recording: int16 samples at 16 kHz, where its speech ends and what was said."""

    name: str
    samples: np.ndarray
    speech_end_s: float
    reference: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def speech_end_sample(self) -> int:
        return min(len(self.samples), round(self.speech_end_s * SAMPLE_RATE))


def bench_order() -> list[str]:
    """Every clip name, interleaving sources (LJ Speech, LibriSpeech, LibriVox, ...) round-robin.

    The first few clips of this order already mix speakers, so a short run is not
    28 clips of the same reader.
    """
    groups: dict[str, list[str]] = {}
    for info in manifest():
        name = info.filename.removesuffix(".wav")
        groups.setdefault(name.split("_", 1)[0], []).append(name)
    return [name for row in zip_longest(*groups.values()) for name in row if name is not None]


def load_clips(names: Sequence[str]) -> list[Clip]:
    """The clips called ``names`` (without ``.wav``), in that order."""
    rows = {info.filename.removesuffix(".wav"): info for info in manifest()}
    unknown = [name for name in names if name not in rows]
    if unknown:
        raise ValueError(f"unknown clip(s): {', '.join(unknown)}")
    return [Clip(name, load_clip(name), rows[name].speech_end_s, rows[name].reference_text) for name in names]
