"""A conversation as a self-contained JSON document, for the history page's export."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streaming.metrics import INSTANT

from .models import METRIC_COLUMNS, Conversation, Turn, TurnMetrics


def conversation_export(conversation: Conversation) -> dict[str, Any]:
    """Everything stored about ``conversation``: its turns, their metrics and its errors."""
    turns = conversation.turns.select_related("metrics").order_by("index")
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "owner": conversation.owner.get_username(),
        "started_at": _iso(conversation.started_at),
        "ended_at": _iso(conversation.ended_at),
        "end_reason": conversation.end_reason,
        "client_kind": conversation.client_kind,
        "engines": conversation.engines,
        "settings": conversation.settings,
        "turns": [_turn(turn) for turn in turns],
        "errors": [
            {
                "code": error.code,
                "message": error.message,
                "recoverable": error.recoverable,
                "turn_id": str(error.turn.turn_id) if error.turn else None,
                "created_at": _iso(error.created_at),
            }
            for error in conversation.errors.select_related("turn")
        ],
    }


def _turn(turn: Turn) -> dict[str, Any]:
    try:
        metrics: TurnMetrics | None = turn.metrics
    except TurnMetrics.DoesNotExist:
        metrics = None
    return {
        "turn_id": str(turn.turn_id),
        "index": turn.index,
        "source": turn.source,
        "status": turn.status,
        "user_text": turn.user_text,
        "assistant_text": turn.assistant_text,
        "assistant_text_generated": turn.assistant_text_generated,
        "audio_duration_s": turn.audio_duration_s,
        "created_at": _iso(turn.created_at),
        "completed_at": _iso(turn.completed_at),
        "metrics": None if metrics is None else _metrics(metrics),
    }


def _metrics(metrics: TurnMetrics) -> dict[str, Any]:
    """Every stored figure, instants as ISO 8601 times."""
    values = {}
    for metric in METRIC_COLUMNS:
        value = getattr(metrics, metric.name)
        values[metric.name] = _iso(value) if metric.unit == INSTANT else value
    return values


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
