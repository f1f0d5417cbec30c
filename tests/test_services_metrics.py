"""conversations.services.record_metrics: each turn's latency report, stored in TurnMetrics.

Epoch seconds become instants and a later report updates the same row. Every figure the pipeline
reports (streaming.metrics) has a column of the right type, so a new one cannot be dropped unnoticed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import models

from conversations import services
from conversations.models import METRIC_COLUMNS, Turn, TurnMetrics
from streaming.metrics import COUNT, FLAG, INSTANT, METRIC_FIELDS, TEXT, TurnClock
from tests.support.conversations import new_turn

pytestmark = pytest.mark.django_db


def test_record_metrics_converts_epoch_seconds_and_upserts(conversation) -> None:
    turn_id = new_turn(conversation)
    t0 = 1_760_000_000.25
    services.record_metrics(
        turn_id,
        {
            "t0": t0,
            "t1": t0 + 0.8,
            "t2": t0 + 2.5,
            "t3": None,
            "speech_end": t0 + 1.9,
            "endpointing_ms": 600,
            "asr_ms": 310.5,
            "voice_to_voice_ms": float("nan"),
            "asr_rtf": 0.12,
            "partials": 2,
            "not_a_metric": 1,
        },
    )
    metrics = TurnMetrics.objects.get(turn__turn_id=turn_id)
    assert metrics.t0 == datetime(2025, 10, 9, 8, 53, 20, 250000, tzinfo=UTC)
    assert (metrics.t2 - metrics.t0).total_seconds() == pytest.approx(2.5)
    assert metrics.t3 is None and metrics.t4 is None
    assert (metrics.endpointing_ms, metrics.asr_ms, metrics.asr_rtf, metrics.partials) == (
        600.0,
        310.5,
        0.12,
        2,
    )
    assert metrics.voice_to_voice_ms is None and metrics.llm_first_token_ms is None

    services.record_metrics(turn_id, {"t3": t0 + 3, "llm_first_token_ms": 450, "partials": 3})
    metrics = TurnMetrics.objects.get(turn__turn_id=turn_id)
    assert TurnMetrics.objects.count() == 1
    assert (metrics.llm_first_token_ms, metrics.partials, metrics.endpointing_ms) == (450.0, 3, None)


def test_turn_metrics_has_a_column_for_every_metric_field() -> None:
    """A figure added to the pipeline's report needs its column (or a reason not to be stored)."""
    column_type = {
        INSTANT: models.DateTimeField,
        COUNT: models.PositiveIntegerField,
        TEXT: models.CharField,
        FLAG: models.BooleanField,
    }
    for metric in METRIC_COLUMNS:
        column = TurnMetrics._meta.get_field(metric.name)
        assert isinstance(column, column_type.get(metric.unit, models.FloatField)), metric
    columns = {f.name for f in TurnMetrics._meta.concrete_fields} - {"id", "turn"}
    assert columns == {metric.name for metric in METRIC_COLUMNS}
    unstored = {metric.name for metric in METRIC_FIELDS} - columns
    assert unstored == {"audio_duration_s", "final_source"}
    assert isinstance(Turn._meta.get_field("audio_duration_s"), models.FloatField)


def test_a_full_report_fills_every_column(conversation) -> None:
    clock = TurnClock(
        "t",
        asr_compute_s=0.2,
        audio_s=1.5,
        partials=2,
        end_rule="complete",
        end_pause_ms=300,
        end_score=0.97,
        reply_speculative=True,
    )
    for offset, instant in enumerate(("t0", "t1", "speech_end", "t2", "t3", "t4")):
        clock.mark(instant, 100.0 + offset)
    turn_id = new_turn(conversation)
    services.record_metrics(turn_id, clock.report())
    metrics = TurnMetrics.objects.get(turn__turn_id=turn_id)
    assert all(getattr(metrics, metric.name) is not None for metric in METRIC_COLUMNS)
    assert (metrics.endpointing_ms, metrics.voice_to_voice_ms, metrics.asr_rtf) == (1000.0, 3000.0, 0.133)
    assert (metrics.end_rule, metrics.end_pause_ms, metrics.end_score) == ("complete", 300.0, 0.97)
    assert metrics.reply_speculative is True
