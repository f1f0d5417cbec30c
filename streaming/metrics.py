"""Per-turn latency bookkeeping: the t0..t4 instants and the figures derived from them.

Instants are recorded on the monotonic clock and converted to wall-clock epoch
seconds only when reported, so a system clock change mid-turn cannot produce
negative latencies.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("streaming.metrics")

_INSTANTS = ("t0", "t1", "t2", "t3", "t4", "speech_end")


@dataclass
class TurnClock:
    """The instants of one turn.

    t0: utterance audio start; t1: first partial; t2: final transcript; t3: first
    LLM token; t4: first TTS audio; speech_end: end of the last voiced audio.
    ``final_source`` says where the final came from: "decoded" after the silence
    timeout, "speculative" (decoded as silence began) or "partial" (a partial
    that already covered all the speech).
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
    extra: dict[str, Any] = field(default_factory=dict)

    def mark(self, name: str, at: float | None = None) -> None:
        """Record instant ``name`` once; later marks of the same instant are ignored."""
        if getattr(self, name) is None:
            setattr(self, name, time.monotonic() if at is None else at)

    def report(self) -> dict[str, Any]:
        """Epoch-second instants plus the derived durations in milliseconds."""
        offset = time.time() - time.monotonic()
        values: dict[str, Any] = {
            name: (None if getattr(self, name) is None else round(getattr(self, name) + offset, 3))
            for name in _INSTANTS
        }
        values.update(
            endpointing_ms=_ms(self.speech_end, self.t2),
            asr_ms=None if self.asr_compute_s is None else round(self.asr_compute_s * 1000, 1),
            llm_first_token_ms=_ms(self.t2, self.t3),
            tts_first_audio_ms=_ms(self.t3, self.t4),
            voice_to_voice_ms=_ms(self.speech_end, self.t4),
            asr_rtf=(
                round(self.asr_compute_s / self.audio_s, 3)
                if self.asr_compute_s is not None and self.audio_s
                else None
            ),
            audio_duration_s=None if self.audio_s is None else round(self.audio_s, 3),
            partials=self.partials,
            final_source=self.final_source,
        )
        values.update(self.extra)
        return values


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 1)


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
