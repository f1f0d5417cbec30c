"""The utterance the listener (:mod:`streaming.listener`) is hearing now, and how it ended.

Its tasks (partials, the speculative final, the end-of-turn judgement, the speculative
reply's text) are owned by the listener; this module only keeps their state and says, when
the utterance ends, why it did (:func:`record_end`, for the turn's metrics and
``speech_stopped.reason``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from streaming.audio import SAMPLE_RATE
from streaming.metrics import TurnClock
from streaming.turn_detection import TurnRule, TurnVerdict
from streaming.vad import UtteranceEnd


@dataclass
class Utterance:
    """The utterance being spoken now."""

    turn_id: str
    clock: TurnClock
    partial_task: asyncio.Task | None = None
    partial_decode: asyncio.Task | None = None
    """The last partial's decode (a :class:`~streaming.asr.Transcription`, or None if skipped)."""
    partial_decode_end: int = -1
    """The sample its audio ends at."""
    last_partial_at: float = 0.0
    last_partial_end: int = -1
    last_partial_text: str = ""
    speculative: asyncio.Task | None = None
    speculative_end: int = -1
    silent: bool = False
    judge: asyncio.Task | None = None
    verdict: TurnVerdict | None = None
    prefetch: asyncio.Task | None = None
    resumes: bool = False


def record_end(utt: Utterance, event: UtteranceEnd, *, adaptive: bool, silence_ms: int) -> str:
    """Note on the turn's clock why it ended; return the reason for ``speech_stopped``
    (``end_of_turn`` when the detector judged it complete)."""
    clock = utt.clock
    if event.reason != "silence":
        clock.end_rule = event.reason
        return event.reason
    clock.end_pause_ms = round((event.at_sample - event.speech_end_sample) * 1000 / SAMPLE_RATE)
    if not adaptive:
        clock.end_rule = TurnRule.FIXED.value
        return "silence"
    verdict = utt.verdict or TurnVerdict(TurnRule.UNSURE, silence_ms)
    clock.end_rule, clock.end_score = verdict.rule.value, verdict.score
    return "end_of_turn" if verdict.rule is TurnRule.COMPLETE else "silence"


async def text_of(speculative: asyncio.Task) -> str:
    """The speculative final's text, for the detector; "" if the decode failed (its turn reports it)."""
    try:
        return (await asyncio.shield(speculative)).text
    except asyncio.CancelledError:
        raise
    except Exception:
        return ""
