"""What the VAD reports: the events of :class:`~streaming.vad.VadSegmenter`, positions in samples."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SpeechStart:
    """An utterance began at ``start_sample`` (pre-roll included)."""

    start_sample: int


@dataclass(frozen=True)
class SilenceStart:
    """Speech paused at ``at_sample``; the utterance ends unless speech resumes.

    From now until a :class:`SpeechResume`, ``utterance_audio()`` is exactly the
    audio the coming :class:`UtteranceEnd` will carry.
    """

    at_sample: int


@dataclass(frozen=True)
class SpeechResume:
    """Speech came back at ``at_sample`` before the silence timeout: the pause was not the end."""

    at_sample: int


@dataclass(frozen=True)
class UtteranceEnd:
    """A finished utterance: its audio from ``start_sample``, ending a short trail after the speech.

    ``speech_end_sample`` is the end of the last voiced frame (where the user
    stopped talking); ``reason`` is "silence", "max_length" or the flush reason;
    ``at_sample`` the stream position where the end was decided.  Equality ignores
    ``audio`` (arrays have no single truth value) and ``at_sample``.
    """

    audio: np.ndarray = field(compare=False)
    start_sample: int
    speech_end_sample: int
    reason: str
    at_sample: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SpeechDiscarded:
    """The utterance begun at ``start_sample`` had under ``min_speech_ms`` of voiced audio (a click,
    a cough): it ends at ``at_sample`` without an :class:`UtteranceEnd` and should leave no turn."""

    start_sample: int
    at_sample: int


VadEvent = SpeechStart | SilenceStart | SpeechResume | UtteranceEnd | SpeechDiscarded
