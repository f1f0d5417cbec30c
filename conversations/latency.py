"""Daily latency percentiles for the admin summary.

Percentiles are computed in Python from plain value lists, so the summary works
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.utils import timezone

# (field on TurnMetrics, column heading)
STAGES = (
    ("endpointing_ms", "Endpointing"),
    ("llm_first_token_ms", "LLM first token"),
    ("tts_first_audio_ms", "TTS first audio"),
    ("voice_to_voice_ms", "Voice to voice"),
)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class StageSummary:
    """p50/p95 of one stage over ``samples`` turns that measured it."""

    samples: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class DaySummary:
    """One day's measured turns and each stage's percentiles, in :data:`STAGES` order."""

    day: date
    count: int
    stages: tuple[StageSummary, ...]


def daily_summary(rows: Iterable[tuple[datetime, float | None, ...]]) -> list[DaySummary]:
    """Group ``(turn created_at, *stage values)`` rows by local day, newest day first."""
    by_day: dict[date, list[tuple]] = defaultdict(list)
    for created_at, *values in rows:
        by_day[timezone.localdate(created_at)].append(values)
    summaries = []
    for day in sorted(by_day, reverse=True):
        day_rows = by_day[day]
        stages = []
        for column in range(len(STAGES)):
            values = [row[column] for row in day_rows if row[column] is not None]
            stages.append(StageSummary(len(values), percentile(values, 50), percentile(values, 95)))
        summaries.append(DaySummary(day, len(day_rows), tuple(stages)))
    return summaries
