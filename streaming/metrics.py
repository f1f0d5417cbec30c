"""Per-turn latency bookkeeping: the figures a turn reports, its t0..t4 instants, percentiles.

:data:`METRIC_FIELDS` is the one list of the figures: the pipeline reports exactly these
keys, and the database columns, the export, the admin, the history page and the chat
page's latency breakdown all take their names, labels and units from it.

Instants are recorded on the monotonic clock and converted to wall-clock epoch
seconds only when reported, so a system clock change mid-turn cannot produce
negative latencies.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("streaming.metrics")

INSTANT = "epoch_s"
MS = "ms"
SECONDS = "s"
RATIO = "ratio"
COUNT = "count"
TEXT = "text"
FLAG = "flag"


@dataclass(frozen=True)
class MetricField:
    """One figure of a turn's metrics.

    ``name`` is its key in the report, the ``metrics`` message and the log line; ``unit`` one
    of :data:`INSTANT` (epoch seconds), :data:`MS`, :data:`SECONDS`, :data:`RATIO`,
    :data:`COUNT`, :data:`TEXT`, :data:`FLAG` (true or false). A stage (``span``) is the time
    in ms between two instants; the stages with a ``segment`` add up to voice to voice and are
    drawn as its parts, under that key, with ``hint`` saying what they span.
    """

    name: str
    label: str
    unit: str
    span: tuple[str, str] | None = None
    segment: str | None = None
    hint: str = ""


# Instants in the order a turn usually passes them, which breaks ties in the chat page's timeline.
METRIC_FIELDS: tuple[MetricField, ...] = (
    MetricField("t0", "t0 speech began", INSTANT),
    MetricField("t1", "t1 first partial", INSTANT),
    MetricField("speech_end", "speech ended", INSTANT),
    MetricField("t2", "t2 final transcript", INSTANT),
    MetricField("t3", "t3 first LLM token", INSTANT),
    MetricField("t4", "t4 first TTS audio", INSTANT),
    MetricField(
        "endpointing_ms",
        "Endpointing",
        MS,
        span=("speech_end", "t2"),
        segment="endpointing",
        hint="speech end → final transcript",
    ),
    MetricField("asr_ms", "ASR compute", MS),
    MetricField(
        "llm_first_token_ms",
        "LLM first token",
        MS,
        span=("t2", "t3"),
        segment="llm",
        hint="final transcript → first token",
    ),
    MetricField(
        "tts_first_audio_ms",
        "TTS first audio",
        MS,
        span=("t3", "t4"),
        segment="tts",
        hint="first token → first audio",
    ),
    MetricField("voice_to_voice_ms", "Voice to voice", MS, span=("speech_end", "t4")),
    MetricField("asr_rtf", "ASR real-time factor", RATIO),
    MetricField("audio_duration_s", "Speech duration", SECONDS),
    MetricField("partials", "Partials", COUNT),
    MetricField("final_source", "Final source", TEXT),
    MetricField("end_rule", "Turn ended by", TEXT),
    MetricField("end_pause_ms", "Pause at the end", MS),
    MetricField("end_score", "End-of-turn score", RATIO),
    MetricField("reply_speculative", "Reply begun during the pause", FLAG),
)

STAGES = tuple(f for f in METRIC_FIELDS if f.span)


@dataclass
class TurnClock:
    """The instants of one turn (see :data:`METRIC_FIELDS`) and what its report derives from.

    ``asr_compute_s`` is the final's decoding time and ``audio_s`` the utterance's length.
    ``final_source`` says where the final came from: "decoded" after the silence
    timeout, "speculative" (decoded as silence began) or "partial" (a partial
    that already covered all the speech, or the last partial when the final came back empty
    or failed).  ``end_rule`` says why the utterance ended:
    after a pause, the rule that timed it ("fixed"; with adaptive detection the verdict
    "complete", "unsure" or "unfinished"), with the pause's length ``end_pause_ms`` and
    the detector's ``end_score``; otherwise the reason ("max_length", "stop", ...).
    ``reply_speculative``: the reply's LLM request was started on the speculative final
    during the pause and adopted (see :mod:`streaming.speculation`).
    """

    turn_id: str
    t0: float | None = None
    t1: float | None = None
    t2: float | None = None
    t3: float | None = None
    t4: float | None = None
    speech_end: float | None = None
    asr_compute_s: float | None = None
    audio_s: float | None = None
    partials: int = 0
    final_source: str = "decoded"
    end_rule: str = ""
    end_pause_ms: int | None = None
    end_score: float | None = None
    reply_speculative: bool = False

    def mark(self, name: str, at: float | None = None) -> None:
        """Record instant ``name`` once; later marks of the same instant are ignored."""
        if getattr(self, name) is None:
            setattr(self, name, time.monotonic() if at is None else at)

    def report(self) -> dict[str, Any]:
        """Every field of :data:`METRIC_FIELDS`: epoch-second instants, stages in ms, the rest."""
        offset = time.time() - time.monotonic()
        others: dict[str, Any] = {
            "asr_ms": None if self.asr_compute_s is None else round(self.asr_compute_s * 1000, 1),
            "asr_rtf": (
                round(self.asr_compute_s / self.audio_s, 3)
                if self.asr_compute_s is not None and self.audio_s
                else None
            ),
            "audio_duration_s": None if self.audio_s is None else round(self.audio_s, 3),
            "partials": self.partials,
            "final_source": self.final_source,
            "end_rule": self.end_rule,
            "end_pause_ms": self.end_pause_ms,
            "end_score": self.end_score,
            "reply_speculative": self.reply_speculative,
        }
        values: dict[str, Any] = {}
        for metric in METRIC_FIELDS:
            if metric.unit == INSTANT:
                at = getattr(self, metric.name)
                values[metric.name] = None if at is None else round(at + offset, 3)
            elif metric.span:
                start, end = metric.span
                values[metric.name] = _ms(getattr(self, start), getattr(self, end))
            else:
                values[metric.name] = others[metric.name]
        return values


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks; None if empty.

    Computed as ``numpy.percentile`` does, to the last bit, so the figures of the benchmark
    (which used numpy) and of the admin agree.
    """
    if len(values) == 0:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * (q / 100)
    low = math.floor(rank)
    if low >= len(ordered) - 1:
        return float(ordered[-1])
    below, above = ordered[low], ordered[low + 1]
    fraction = rank - low
    # From the nearer rank, as numpy does: exact at both ends.
    if fraction >= 0.5:
        return above - (above - below) * (1 - fraction)
    return below + (above - below) * fraction


def log_turn(conversation_id: str | None, turn_id: str, status: str, values: dict[str, Any]) -> None:
    """Write the turn's one JSON metrics line."""
    logger.info(
        "turn metrics",
        extra={
            "event": "turn_metrics",
            "conversation_id": conversation_id,
            "turn_id": turn_id,
            "status": status,
            "metrics": json.loads(json.dumps(values, default=str)),
        },
    )
