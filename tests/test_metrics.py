"""Per-turn metrics: the report has exactly METRIC_FIELDS, stages in ms, epoch instants; percentiles."""

from __future__ import annotations

import json
import logging
import random
import time

import numpy as np
import pytest

from streaming.metrics import (
    INSTANT,
    METRIC_FIELDS,
    MS,
    STAGES,
    TurnClock,
    log_turn,
    percentile,
)

# A turn on the monotonic clock: speech ended at 100 s, the final came 250 ms later, and so on.
TIMELINE = {"t0": 97.5, "t1": 98.0, "speech_end": 100.0, "t2": 100.25, "t3": 100.7125, "t4": 101.0}


def clock_at(**instants: float) -> TurnClock:
    clock = TurnClock("turn")
    for name, at in instants.items():
        clock.mark(name, at)
    return clock


def test_the_report_has_exactly_the_metric_fields_in_their_order() -> None:
    report = clock_at(**TIMELINE).report()
    assert list(report) == [field.name for field in METRIC_FIELDS]
    assert len({field.name for field in METRIC_FIELDS}) == len(METRIC_FIELDS)


def test_stages_are_the_ms_between_their_instants() -> None:
    clock = clock_at(**TIMELINE)
    report = clock.report()
    assert report["endpointing_ms"] == 250.0
    assert report["llm_first_token_ms"] == 462.5
    assert report["tts_first_audio_ms"] == 287.5
    assert report["voice_to_voice_ms"] == 1000.0
    for stage in STAGES:
        start, end = stage.span
        assert stage.unit == MS
        assert report[stage.name] == round((TIMELINE[end] - TIMELINE[start]) * 1000, 1)


def test_the_segments_add_up_to_voice_to_voice() -> None:
    report = clock_at(**TIMELINE).report()
    segments = [stage for stage in STAGES if stage.segment]
    assert [s.segment for s in segments] == ["endpointing", "llm", "tts"]
    # Chained end to start, from speech end to first audio: the whole of voice to voice.
    assert segments[0].span[0] == "speech_end" and segments[-1].span[1] == "t4"
    assert all(a.span[1] == b.span[0] for a, b in zip(segments, segments[1:], strict=False))
    assert sum(report[s.name] for s in segments) == report["voice_to_voice_ms"]


def test_a_stage_with_a_missing_instant_is_none() -> None:
    report = clock_at(t0=1.0, speech_end=2.0, t2=2.5).report()  # a turn with no reply
    assert report["endpointing_ms"] == 500.0
    assert report["llm_first_token_ms"] is None
    assert report["tts_first_audio_ms"] is None and report["voice_to_voice_ms"] is None
    assert report["t1"] is None and report["t3"] is None


def test_instants_are_reported_as_epoch_seconds() -> None:
    mono, wall = time.monotonic(), time.time()
    report = clock_at(t0=mono - 2.0, t2=mono).report()
    assert report["t2"] == pytest.approx(wall, abs=0.05)
    assert report["t2"] - report["t0"] == pytest.approx(2.0, abs=0.002)
    instants = [f.name for f in METRIC_FIELDS if f.unit == INSTANT]
    assert [name for name in instants if report[name] is not None] == ["t0", "t2"]


def test_the_other_figures_come_from_the_clocks_fields() -> None:
    clock = TurnClock("turn", asr_compute_s=0.12345, audio_s=2.46913, partials=3, final_source="speculative")
    report = clock.report()
    assert report["asr_ms"] == 123.5
    assert report["asr_rtf"] == 0.05
    assert report["audio_duration_s"] == 2.469
    assert (report["partials"], report["final_source"]) == (3, "speculative")


@pytest.mark.parametrize(("compute", "audio"), [(None, 2.0), (0.1, None), (0.1, 0.0)])
def test_no_real_time_factor_without_both_figures(compute, audio) -> None:
    report = TurnClock("turn", asr_compute_s=compute, audio_s=audio).report()
    assert report["asr_rtf"] is None


def test_a_typed_turn_reports_defaults() -> None:
    report = TurnClock("turn").report()
    assert report["partials"] == 0 and report["final_source"] == "decoded"
    assert report["asr_ms"] is None and report["audio_duration_s"] is None


def test_an_instant_is_marked_once() -> None:
    clock = TurnClock("turn")
    before = time.monotonic()
    clock.mark("t2")
    assert before <= clock.t2 <= time.monotonic()
    first = clock.t2
    clock.mark("t2", first + 5)
    clock.mark("t2")
    assert clock.t2 == first


def test_percentile_of_nothing_is_none_and_of_one_value_that_value() -> None:
    assert percentile([], 50) is None
    assert percentile((), 0) is None
    for q in (0, 50, 95, 100):
        assert percentile([42.5], q) == 42.5


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0, 20.0], 25) == 12.5
    assert percentile([10.0, 20.0], 75) == 17.5
    assert percentile([100.0, 200.0], 0) == 100.0 and percentile([100.0, 200.0], 100) == 200.0
    values = [5.0, 1.0, 3.0]
    percentile(values, 90)
    assert values == [5.0, 1.0, 3.0]  # the caller's list is left alone


def test_percentile_agrees_with_numpy_to_the_last_bit() -> None:
    rng = random.Random(11)
    for size in (2, 3, 7, 20, 101):
        values = [rng.uniform(0, 5000) for _ in range(size)]
        for q in (0, 1, 10, 25, 33.3, 50, 66.7, 90, 95, 99, 100):
            assert percentile(values, q) == float(np.percentile(values, q)), (size, q)


def test_log_turn_writes_one_json_line(caplog) -> None:
    values = clock_at(**TIMELINE).report()
    with caplog.at_level(logging.INFO, logger="streaming.metrics"):
        log_turn("conv", "turn", "completed", {**values, "odd": object()})
    (record,) = caplog.records
    assert (record.event, record.conversation_id, record.turn_id, record.status) == (
        "turn_metrics",
        "conv",
        "turn",
        "completed",
    )
    assert record.metrics["voice_to_voice_ms"] == 1000.0
    json.dumps(record.metrics)  # anything not JSON was turned into text
    assert isinstance(record.metrics["odd"], str)
