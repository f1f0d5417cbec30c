"""Latency figures of stored turns: percentiles, the admin's daily summary, a conversation's median.

Only spoken turns enter these figures. A typed turn has no speech end, no ASR and no
endpointing: the pipeline starts its clock when the message arrives, so its stored
endpointing is the few milliseconds before the reply starts and its "voice to voice" is
message to first audio, a different and smaller quantity that would pull every median down.

Percentiles are computed in Python from plain value lists (:func:`streaming.metrics.percentile`),
so the figures are the same on SQLite and PostgreSQL. The stages are those of
:data:`streaming.metrics.STAGES`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.utils import timezone

from streaming.metrics import STAGES, percentile

from .models import TurnMetrics, TurnSource


def is_spoken(source: str) -> bool:
    """Whether a turn of this ``Turn.source`` counts in latency figures (see the module docstring)."""
    return source == TurnSource.VOICE


def median_voice_to_voice(turns: Iterable[tuple[str, float | None]]) -> float | None:
    """The median voice-to-voice time of the spoken ones among ``(source, voice_to_voice_ms)`` turns."""
    return percentile([ms for source, ms in turns if is_spoken(source) and ms is not None], 50)


@dataclass(frozen=True)
class LatencyText:
    """A turn's latency in words, in milliseconds without the unit, as the history page and admin show it.

    ``total`` is e.g. "voice to voice 1350" (None if not measured); ``stages`` e.g.
    "endpointing 820 (ASR 240) · LLM 380 · TTS 150": the stages add up to the total, and the
    final's ASR compute is part of the endpointing window. A typed turn's total is "message to
    first audio" and its first stage "queued", the wait before its reply started. ``ending``
    says why a spoken turn ended, e.g. "judged complete after a 320 ms pause (score 0.97)".
    """

    total: str | None
    stages: str
    ending: str = ""


def latency_text(source: str, metrics: TurnMetrics) -> LatencyText:
    """Describe ``metrics`` of a turn that arrived as ``source``."""
    if is_spoken(source):
        first = _ms_text("endpointing", metrics.endpointing_ms)
        if first and metrics.asr_ms is not None:
            first += f" (ASR {metrics.asr_ms:.0f})"
        total = _ms_text("voice to voice", metrics.voice_to_voice_ms)
    else:
        first = _ms_text("queued", metrics.endpointing_ms)
        total = _ms_text("message to first audio", metrics.voice_to_voice_ms)
    stages = [first, _ms_text("LLM", metrics.llm_first_token_ms), _ms_text("TTS", metrics.tts_first_audio_ms)]
    ending = turn_ending(metrics) if is_spoken(source) else ""
    return LatencyText(total, " · ".join(stage for stage in stages if stage), ending)


_ENDINGS = {
    "fixed": "ended after {pause}",
    "complete": "judged complete after {pause}",
    "unsure": "not judged complete: ended after {pause}",
    "unfinished": "judged unfinished: ended only after {pause}",
    "max_length": "reached the longest utterance",
    "stop": "ended by the client's stop",
    "restart": "ended by a new start",
    "disconnect": "ended by the disconnect",
    "audio_dropped": "ended where audio was dropped",
}


def turn_ending(metrics: TurnMetrics) -> str:
    """Why the utterance ended (the rule that timed its last pause, or what cut it), in words."""
    template = _ENDINGS.get(metrics.end_rule)
    if template is None:
        return metrics.end_rule
    pause = "its pause" if metrics.end_pause_ms is None else f"a {metrics.end_pause_ms:.0f} ms pause"
    text = template.format(pause=pause)
    if metrics.end_score is not None:
        text += f" (score {metrics.end_score:.2f})"
    if metrics.reply_speculative:
        text += "; reply begun during the pause"
    return text


def _ms_text(label: str, value: float | None) -> str | None:
    return None if value is None else f"{label} {value:.0f}"


@dataclass(frozen=True)
class StageSummary:
    """p50/p95 of one stage over ``samples`` turns that measured it."""

    samples: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class DaySummary:
    """One day's measured spoken turns and each stage's percentiles, in :data:`STAGES` order.

    ``typed`` counts the day's measured typed turns, which the percentiles leave out.
    """

    day: date
    count: int
    typed: int
    stages: tuple[StageSummary, ...]


def daily_summary(rows: Iterable[tuple[datetime, str, float | None, ...]]) -> list[DaySummary]:
    """Group ``(turn created_at, turn source, *stage values)`` rows by local day, newest day first."""
    spoken: dict[date, list[tuple]] = defaultdict(list)
    typed: dict[date, int] = defaultdict(int)
    for created_at, source, *values in rows:
        day = timezone.localdate(created_at)
        if is_spoken(source):
            spoken[day].append(values)
        else:
            typed[day] += 1
    summaries = []
    for day in sorted(spoken.keys() | typed.keys(), reverse=True):
        day_rows = spoken[day]
        stages = []
        for column in range(len(STAGES)):
            values = [row[column] for row in day_rows if row[column] is not None]
            stages.append(StageSummary(len(values), percentile(values, 50), percentile(values, 95)))
        summaries.append(DaySummary(day, len(day_rows), typed[day], tuple(stages)))
    return summaries
