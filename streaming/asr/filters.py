"""What Whisper makes up: silent audio, hallucinated segments, stock phrases invented on noise.

Whisper writes text for any audio it is given, so :class:`~streaming.asr.whisper.WhisperASR`
skips audio with nothing in it, drops segments that look invented, and drops the stock
phrases Whisper produces on silence unless the audio really sounds like speech.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from streaming.audio import SAMPLE_RATE

_MAX_COMPRESSION_RATIO = 2.4
# Whisper's own rule is no-speech > 0.6 with log-prob < -1.0; real speech here stays above -0.7.
_NO_SPEECH_PROB = 0.6
_LOW_LOGPROB = -0.7
# Whisper's stock inventions on silence and noise.  A real, short "Thank you." scores a no-speech
# probability of 0.2-0.5, so these are dropped only when quiet (95th-percentile 30 ms frame below
# about -40 dBFS; real speech in the test corpus is above -25 dBFS) or when Whisper doubts speech.
_SILENCE_PHRASES = frozenset(
    {
        "you",
        "thank you",
        "thank you very much",
        "thanks for watching",
        "thank you for watching",
        "bye",
        "so",
        "the end",
    }
)
_QUIET_FRAME_RMS = 300.0
_SILENT_FRAME_RMS = 20.0
_FRAME = SAMPLE_RATE * 30 // 1000


def frame_rms(audio: np.ndarray) -> np.ndarray:
    """RMS of each 30 ms frame in int16 units (one value for shorter audio, none for empty)."""
    count = max(1, len(audio) // _FRAME)
    frames = audio[: count * _FRAME].astype(np.float64).reshape(count, -1) if len(audio) else np.zeros((0, 1))
    return np.sqrt(np.mean(np.square(frames), axis=1))


def is_silent(loudness: np.ndarray) -> bool:
    """True when no frame rises above digital silence: not worth a Whisper call."""
    return loudness.size == 0 or loudness.max() < _SILENT_FRAME_RMS


def hallucinated(segment: Any) -> bool:
    """A segment Whisper made up: a repetition loop, or likely non-speech decoded without confidence."""
    return segment.compression_ratio > _MAX_COMPRESSION_RATIO or (
        segment.no_speech_prob > _NO_SPEECH_PROB and segment.avg_logprob < _LOW_LOGPROB
    )


def invented_on_silence(text: str, loudness: np.ndarray, segments: Sequence[Any]) -> bool:
    """True when ``text`` is a stock silence phrase heard in quiet audio or doubted as speech."""
    return _silence_phrase(text) and (
        np.percentile(loudness, 95) < _QUIET_FRAME_RMS
        or max(segment.no_speech_prob for segment in segments) > _NO_SPEECH_PROB
    )


def _silence_phrase(text: str) -> bool:
    return re.sub(r"[^a-z ]+", "", text.lower()).strip() in _SILENCE_PHRASES
