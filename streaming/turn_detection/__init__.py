"""End of turn: at a pause, has the user finished speaking, or only paused?

A fixed silence rule answers every pause after the same wait, so nobody hears a reply
before it ends, however plainly the person had finished.  With adaptive detection
the listener asks, at each pause, a :class:`TurnDetector` for a :class:`TurnVerdict`
from what it can measure then: the speculative final's text and the utterance's
audio.  The verdict says how long this pause must last to end the turn:

* complete -> ``STREAM_TURN_MIN_SILENCE_MS`` (answer now);
* unsure -> ``STREAM_VAD_SILENCE_MS`` (the fixed rule's wait);
* unfinished -> ``STREAM_TURN_MAX_SILENCE_MS`` (a trailing "and ...": wait longer).

:mod:`~streaming.turn_detection.cues` reads the text, :mod:`~streaming.turn_detection.smart_turn`
runs Pipecat's Smart Turn audio model, and :mod:`~streaming.turn_detection.detector`
combines them.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np


class TurnRule(StrEnum):
    """Why a turn ended (or how long its pause must last), as stored and sent to the client."""

    FIXED = "fixed"
    COMPLETE = "complete"
    UNSURE = "unsure"
    UNFINISHED = "unfinished"


@dataclass(frozen=True)
class TurnVerdict:
    """The detector's judgement of one pause: the rule, the pause it asks for, the model's score."""

    rule: TurnRule
    silence_ms: int
    score: float | None = None


class TurnDetector(Protocol):
    """Judges a pause from the utterance's audio so far (int16, 16 kHz) and its transcript,
    which may still be decoding (an awaitable), so audio analysis can start at once."""

    name: str

    async def judge(self, audio: np.ndarray, text: Awaitable[str] | str) -> TurnVerdict: ...
