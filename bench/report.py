"""The results as a readable plain-text table for the terminal."""

from __future__ import annotations

from typing import Any

_LATENCY_ROWS = (
    ("endpointing (speech end -> final)", "endpointing_ms"),
    ("final -> first llm_token", "final_to_token_ms"),
    ("first token -> first tts_chunk", "token_to_tts_ms"),
    ("voice-to-voice (speech end -> tts)", "voice_to_voice_ms"),
)


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "-" * len(line)]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return out


def _latency(title: str, level: dict[str, Any]) -> list[str]:
    out = [
        f"{title}: {level['turns']} turns, {level['repeats']} repeat(s); medians of the repeats' percentiles"
    ]
    rows = [
        [name] + [_fmt(level[key][p]) for p in ("p50", "p90", "p95", "max")] for name, key in _LATENCY_ROWS
    ]
    out += _table(["ms", "p50", "p90", "p95", "max"], rows)
    out.append(
        f"final sources {level['final_sources']}; partial every {_fmt(level['partial_interval_s'], 2)} s; "
        f"server CPU {_fmt(level['cpu_percent'])} %, other processes {_fmt(level['other_cpu_percent'])} %; "
        f"statuses {level['turn_status']}"
    )
    return out


def render(results: dict[str, Any]) -> str:
    """The whole report, one section per measurement."""
    m, cfg = results["machine"], results["server_config"]
    out = [
        f"Machine: {m['cpus']} cores ({m['cpu_model']}), {m['memory_mb']} MB; load {m['loadavg_start']} -> "
        f"{m.get('loadavg_end')}; commit {m['git_commit']}",
        f"Server: {cfg['model']}, {cfg['asr_cpu_threads']} ASR thread(s) x {cfg['asr_workers']} worker(s), "
        f"VAD silence {cfg['vad_silence_ms']} ms, partial interval {cfg['partial_interval_ms']} ms, "
        f"speculative final {cfg['speculative_final']}, barge-in {cfg['barge_in']}",
        "",
        "1. ASR cost, in-process (seconds per call, p50 / p90)",
    ]
    rows = [
        [
            f"{row['cpu_threads']} x {row['workers']}",
            f"{_fmt(row['partial_s']['p50'], 3)} / {_fmt(row['partial_s']['p90'], 3)}",
            f"{_fmt(row['final_s']['p50'], 3)} / {_fmt(row['final_s']['p90'], 3)}",
            _fmt(row["final_rtf"], 3),
            _fmt(row["partials_per_s"], 2),
            _fmt(row["finals_per_s"], 2),
            _fmt(row["other_cpu_percent"]),
        ]
        for row in results["asr_cost"]
    ]
    out += _table(
        [
            "threads x workers",
            "partial 1-3 s",
            "final (clip)",
            "final RTF",
            "partials/s",
            "finals/s",
            "other CPU %",
        ],
        rows,
    )
    out += ["", *_latency("2. Latency at the client, offline responder", results["latency"]["offline"])]
    openai = results["latency"]["openai"]
    if "skipped" in openai:
        out.append(f"   OpenAI-compatible server: skipped ({openai['skipped']})")
    else:
        out += [
            "",
            *_latency(f"   OpenAI-compatible server {openai['endpoint']} ({openai['model']})", openai),
        ]
    cap = results["capacity"]
    out += [
        "",
        f"3. Capacity: conversational sessions at once (bound: p95 endpointing < {cap['bound_ms']} ms)",
    ]
    rows = [
        [
            str(level["sessions"]),
            str(level["turns"]),
            f"{_fmt(level['endpointing_ms']['p50'])} / {_fmt(level['endpointing_ms']['p95'])}",
            f"{_fmt(level['voice_to_voice_ms']['p50'])} / {_fmt(level['voice_to_voice_ms']['p95'])}",
            _fmt(level["partial_interval_s"], 2),
            _fmt(level["partials_per_speech_s"], 2),
            _fmt(level["cpu_percent"]),
            _fmt(level["other_cpu_percent"]),
            _fmt(level["rss_mb_peak"]),
            f"{_pct(level['wer'], 1)} / {_pct(level.get('batch_wer'), 1)}",
            str(level["turns"] - level["turns_answered"] + len(level["session_errors"])),
        ]
        for level in cap["levels"]
    ]
    out += _table(
        [
            "N",
            "turns",
            "endpoint p50/p95",
            "v2v p50/p95",
            "partial gap s",
            "partials/s",
            "CPU %",
            "other CPU %",
            "RSS MB",
            "WER stream/batch",
            "not completed",
        ],
        rows,
    )
    out.append(f"   largest N within the bound: {cap['max_sessions_within_bound']}")
    mem = results["memory"]
    out += [
        "",
        f"4. Memory: idle {_fmt(mem['idle_rss_mb'])} MB "
        f"(process tree {_fmt(mem['idle_tree_rss_mb'])} MB); "
        f"first session +{_fmt(mem['first_session_mb'])} MB, each further session "
        f"{_fmt(mem['per_session_mb'], 2)} MB; "
        f"peak by sessions {mem['rss_mb_peak_by_sessions']}",
    ]
    accuracy = results["accuracy"]
    out += ["", "5. Accuracy: WER of the streamed finals and of one batch call per clip (same model)"]
    for label, key in (("latency run (1 session)", "latency_run"), ("every run", "all_runs")):
        acc = accuracy[key]
        out.append(
            f"   {label}: {acc['clips']} clips, streamed {_pct(acc['streamed_wer'])}, "
            f"batch {_pct(acc['batch_wer'])}, difference {_fmt(acc['delta_points'], 2)} points"
        )
    out += [
        "",
        "Targets",
    ]
    rows = [[t["target"], f"{t['bound']:g}", _fmt(t["value"], 1), _fmt(t["met"])] for t in results["targets"]]
    out += _table(["target", "bound", "measured", "met"], rows)
    out.append(f"\nRan in {results['duration_s']:.0f} s: {results['command']}")
    return "\n".join(out)


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f} %"
