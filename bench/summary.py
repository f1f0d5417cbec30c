"""Turn records → the reported figures: latency percentiles, partial cadence, WER, capacity, memory."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.client import TurnRecord
from bench.corpus import word_error_rate
from bench.load import LevelRun
from bench.stats import distribution, median, median_of, slope
from streaming.asr import Transcription

LATENCIES = ("endpointing_ms", "final_to_token_ms", "token_to_tts_ms", "voice_to_voice_ms")


def _turn_figures(turns: list[TurnRecord]) -> dict[str, Any]:
    latencies = [turn.latencies_ms() for turn in turns]
    figures: dict[str, Any] = {key: distribution(row[key] for row in latencies) for key in LATENCIES}
    figures["partial_interval_s"] = median(
        (median(t.partial_intervals_s(), 3) for t in turns if len(t.partial_intervals_s())), 3
    )
    figures["partials_per_speech_s"] = median((t.partial_count() / t.speech_s for t in turns), 3)
    # A clip with no final counts as all deletions: losing an utterance is an error too.
    figures["wer"] = (
        round(word_error_rate([t.reference for t in turns], [t.text for t in turns]), 4) if turns else None
    )
    return figures


def summarize_runs(runs: list[LevelRun]) -> dict[str, Any]:
    """One level's figures: each figure's median across repeats, plus what every turn did."""
    per_run = [_turn_figures(run.turns) for run in runs]
    turns = [turn for run in runs for turn in run.turns]
    summary: dict[str, Any] = {
        "sessions": runs[0].sessions,
        "repeats": len(runs),
        "turns": len(turns),
        "turns_answered": sum(1 for t in turns if t.status == "completed"),
        "turn_status": dict(Counter(t.status for t in turns)),
        "session_errors": [r.error for run in runs for r in run.results if r.error],
        "final_sources": dict(Counter(t.turns[-1].final_source or "none" for t in turns if t.turns)),
        "split_clips": sum(1 for t in turns if len(t.turns) > 1),
    }
    for key in LATENCIES:
        summary[key] = median_of([figures[key] for figures in per_run])
    for key in ("partial_interval_s", "partials_per_speech_s", "wer"):
        summary[key] = median((figures[key] for figures in per_run), 4)
    for key in runs[0].process:
        summary[key] = median((run.process[key] for run in runs), 1)
    summary["client_send_lag_ms_max"] = round(
        1000 * max((r.max_send_lag_s for run in runs for r in run.results), default=0.0), 1
    )
    summary["wall_s"] = median((run.wall_s for run in runs), 1)
    summary["turn_records"] = [
        {"repeat": index, "session": session} | turn.as_dict()
        for index, run in enumerate(runs)
        for session, result in enumerate(run.results)
        for turn in result.turns
    ]
    summary["per_repeat"] = [
        {key: figures[key]["p50"] for key in LATENCIES} | {"wer": figures["wer"]} for figures in per_run
    ]
    return summary


def capacity(levels: list[dict[str, Any]], bound_ms: float) -> int:
    """The largest session count whose p95 endpointing stays under ``bound_ms`` (0 if none does)."""
    within = [
        level["sessions"]
        for level in levels
        if level["endpointing_ms"]["p95"] is not None
        and level["endpointing_ms"]["p95"] < bound_ms
        and not level["session_errors"]
    ]
    return max(within, default=0)


def memory(idle: dict[str, float], levels: list[dict[str, Any]]) -> dict[str, Any]:
    """Idle RSS, peak RSS at each session count, and what the first and each further session add.

    The first session pays one-off costs (the model's first real calls, the TTS
    pipes), so the per-session figure is the slope over the session counts tried.
    """
    peaks = {level["sessions"]: level["rss_mb_peak"] for level in levels}
    per_session = slope(list(peaks), list(peaks.values()))
    return {
        "idle_rss_mb": idle["rss_mb"],
        "idle_tree_rss_mb": idle["tree_rss_mb"],
        "first_session_mb": round(peaks[1] - idle["rss_mb"], 1) if 1 in peaks else None,
        "per_session_mb": None if per_session is None else round(per_session, 2),
        "rss_mb_peak_by_sessions": {str(n): mb for n, mb in peaks.items()},
        "tree_rss_mb_peak_by_sessions": {
            str(level["sessions"]): level["tree_rss_mb_peak"] for level in levels
        },
    }


def accuracy(streamed: list[TurnRecord], batch: dict[str, Transcription]) -> dict[str, Any]:
    """WER of the streamed finals beside WER of one batch call per clip, over the same clips.

    ``streamed`` may hold each clip several times (repeats); the batch side counts
    each clip as often, so both rates weigh the clips alike.
    """
    if not streamed:
        return {"clips": 0, "streamed_wer": None, "batch_wer": None, "delta_points": None, "per_clip": []}
    refs = [t.reference for t in streamed]
    streamed_wer = word_error_rate(refs, [t.text for t in streamed])
    batch_wer = word_error_rate(refs, [batch[t.clip].text for t in streamed])
    return {
        "clips": len({t.clip for t in streamed}),
        "streamed_turns": len(streamed),
        "streamed_wer": round(streamed_wer, 4),
        "batch_wer": round(batch_wer, 4),
        "delta_points": round(100 * (streamed_wer - batch_wer), 2),
        "batch_rtf_median": median((r.compute_s / r.audio_s for r in batch.values()), 3),
        "per_clip": [
            {
                "clip": t.clip,
                "streamed": t.text,
                "batch": batch[t.clip].text,
                "batch_s": round(batch[t.clip].compute_s, 3),
                "reference": t.reference,
            }
            for t in streamed
        ],
    }


def targets(
    silence_ms: int,
    latency: dict[str, Any],
    capacity_n: int,
    memory_: dict[str, Any],
    accuracy_: dict[str, Any],
) -> list[dict[str, Any]]:
    """The issue's targets for this machine, each with the measured value and whether it is met."""
    rss8 = memory_["rss_mb_peak_by_sessions"].get("8")
    rows = [
        ("endpointing p50 (ms)", silence_ms + 150, latency["endpointing_ms"]["p50"], "<="),
        ("voice-to-voice p50 (ms)", silence_ms + 300, latency["voice_to_voice_ms"]["p50"], "<="),
        ("sessions within p95 endpointing bound", 8, capacity_n, ">="),
        ("streamed - batch WER (points)", 0.5, accuracy_["delta_points"], "<="),
        ("server RSS with 8 sessions (MB)", 600, rss8, "<="),
    ]
    return [
        {
            "target": name,
            "bound": bound,
            "value": value,
            "met": None if value is None else (value <= bound if op == "<=" else value >= bound),
        }
        for name, bound, value, op in rows
    ]
