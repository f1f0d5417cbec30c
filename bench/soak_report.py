"""A soak's readings and turns → its reported figures, and those figures as a plain-text table."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from bench.procstat import MB
from bench.report import _fmt, _table
from bench.stats import distribution, slope

if TYPE_CHECKING:
    from bench.soak import SoakRun

PARTS = ("daphne_mb", "workers_mb", "total_mb")
MOMENTS = (
    ("idle", "idle (server ready, no session)"),
    ("start", "start (after the warm-up)"),
    ("end", "end (users still talking)"),
    ("closed", "closed (every session ended)"),
)


def summarize(soak: SoakRun, stored: dict[str, Any] | None, minutes: float) -> dict[str, Any]:
    """Memory at the labelled moments and its trend, conversations, latency overall and per minute."""
    readings = [reading.figures() for reading in soak.readings]
    labelled = {r["label"]: r for r in readings if r["label"]}
    turns = [
        (session, turn, (turn.speech_end_at or turn.started_at) - soak.origin)
        for session in soak.sessions
        for turn in session.result.turns
    ]
    soaked = [turn for _, turn, at in turns if at >= 0]
    info = next((s.info for s in soak.sessions if s.info), {})
    return {
        "session": {"engines": info.get("engines"), "limits": info.get("limits")},
        "memory": _memory(readings, labelled, soak.peak_daphne_bytes),
        "conversations": _conversations(soak, stored),
        "latency": {
            key: distribution(turn.latencies_ms()[key] for turn in soaked)
            for key in ("endpointing_ms", "voice_to_voice_ms")
        },
        "per_minute": _per_minute(turns, labelled, math.ceil(minutes)),
        "readings": readings,
        "turn_records": [
            {
                "user": session.user,
                "conversation_id": session.info.get("conversation_id"),
                "at_s": round(at, 1),
            }
            | turn.as_dict()
            for session, turn, at in turns
        ],
    }


def _memory(readings: list[dict[str, Any]], labelled: dict[str, dict[str, Any]], peak: int) -> dict[str, Any]:
    start, end = labelled["start"], labelled["end"]
    during = [r for r in readings if start["at_s"] <= r["at_s"] <= end["at_s"]]
    figures: dict[str, Any] = {
        label: {key: labelled[label][key] for key in (*PARTS, "workers")} for label, _ in MOMENTS
    }
    figures["growth_mb"] = {key: round(end[key] - start[key], 1) for key in PARTS}
    # Two readings can differ by chance (a burst of replies at the end); the trend over all is steadier.
    trend = {key: slope([r["at_s"] / 60 for r in during], [r[key] for r in during]) for key in PARTS}
    figures["trend_mb_per_min"] = {key: None if v is None else round(v, 2) for key, v in trend.items()}
    figures["retained_after_close_mb"] = {
        key: round(labelled["closed"][key] - labelled["idle"][key], 1) for key in PARTS
    }
    figures["peak_total_mb"] = max(r["total_mb"] for r in during)
    figures["peak_daphne_mb_kernel"] = round(peak / MB, 1)
    figures["readings"] = len(readings)
    return figures


def _conversations(soak: SoakRun, stored: dict[str, Any] | None) -> dict[str, Any]:
    results = [session.result for session in soak.sessions]
    turns = [turn for result in results for turn in result.turns]
    finals = [uuid.UUID(final_id).hex for result in results for final_id in result.final_ids]
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.error_codes)
    figures: dict[str, Any] = {
        "sessions": len(soak.sessions),
        "conversation_ids": len({s.info.get("conversation_id") for s in soak.sessions if s.info}),
        "utterances_sent": len(turns),
        "turns_answered": sum(1 for turn in turns if turn.status == "completed"),
        "statuses": dict(Counter(turn.status for turn in turns)),
        "finals_received": len(finals),
        "errors_by_code": dict(errors),
        "session_errors": [result.error for result in results if result.error],
        "client_send_lag_ms_max": round(1000 * max((r.max_send_lag_s for r in results), default=0.0), 1),
    }
    if stored is None:
        figures["finals_stored"] = None  # another database than the bench's SQLite file: not checked
        return figures
    kept = {uuid.UUID(turn_id).hex for turn_id in stored["turn_ids"]}
    missing = [final for final in finals if final not in kept]
    figures["finals_stored"] = len(finals) - len(missing)
    figures["finals_missing"] = missing[:20]
    figures["end_reasons"] = stored["end_reasons"]
    return figures


def _per_minute(
    turns: list[tuple[Any, Any, float]], labelled: dict[str, dict[str, Any]], minutes: int
) -> list[dict[str, Any]]:
    """One row for the warm-up and one per minute: what was said and answered, latency, memory, CPU.

    A turn belongs to the minute its speech ended in; the last clips, finished after
    the end, count in the last minute.
    """
    bounds = [labelled["idle"], labelled["start"]]
    bounds += [labelled[f"minute {m}"] for m in range(1, minutes) if f"minute {m}" in labelled]
    bounds.append(labelled["end"])
    rows = []
    for index, (first, last) in enumerate(zip(bounds, bounds[1:], strict=False)):
        inside = [
            turn
            for _, turn, at in turns
            if (index == 0 and at < 0) or (index > 0 and at >= 0 and min(int(at // 60) + 1, minutes) == index)
        ]
        elapsed = max(last["at_s"] - first["at_s"], 1e-9)
        server = last["cpu_tree_s"] - first["cpu_tree_s"]
        other = (
            last["cpu_machine_s"]
            - first["cpu_machine_s"]
            - server
            - (last["cpu_self_s"] - first["cpu_self_s"])
        )
        endpointing = distribution(turn.latencies_ms()["endpointing_ms"] for turn in inside)
        rows.append(
            {
                "minute": "warm-up" if index == 0 else index,
                "utterances": len(inside),
                "answered": sum(1 for turn in inside if turn.status == "completed"),
                "errors": sum(len(turn.errors) for turn in inside),
                "endpointing_p50_ms": endpointing["p50"],
                "endpointing_p95_ms": endpointing["p95"],
                "daphne_mb": last["daphne_mb"],
                "workers_mb": last["workers_mb"],
                "total_mb": last["total_mb"],
                "server_cpu_percent": round(100 * server / elapsed, 1),
                "other_cpu_percent": round(max(0.0, 100 * other / elapsed), 1),
            }
        )
    return rows


def render(results: dict[str, Any]) -> str:
    """The soak's report: memory at each moment, then minute by minute, then the conversations."""
    options, project, m = results["options"], results["project"], results["machine"]
    memory, talk = results["memory"], results["conversations"]
    changed = f" + {len(project['status'])} uncommitted change(s)" if project["status"] else ""
    out = [
        f"Soak: {options['users']} users x {options['minutes']:g} min after a {options['warmup_s']:g} s "
        f"warm-up; {project['path']} at {project['commit']}{changed}",
        f"Machine: {m['cpus']} cores, {m['memory_mb']} MB; load {m['loadavg_start']} -> "
        f"{m.get('loadavg_end')}; engines {results['session']['engines']}",
        "",
        "Server memory (RSS from /proc, MB)",
    ]
    rows = [
        [title, _fmt(memory[label]["daphne_mb"], 1), _fmt(memory[label]["workers_mb"], 1)]
        + [str(memory[label]["workers"]), _fmt(memory[label]["total_mb"], 1)]
        for label, title in MOMENTS
    ]
    for title, key in (
        ("growth, start -> end", "growth_mb"),
        ("trend per minute of soak", "trend_mb_per_min"),
    ):
        daphne, workers, total = (_signed(memory[key][part]) for part in PARTS)
        rows.append([title, daphne, workers, "", total])
    out += _table(["moment", "daphne", "TTS workers", "n", "total"], rows)
    out.append(
        f"peak: daphne {_fmt(memory['peak_daphne_mb_kernel'], 1)} MB (kernel high-water mark), "
        f"total {_fmt(memory['peak_total_mb'], 1)} MB sampled; {memory['readings']} readings"
    )
    out += ["", "Minute by minute (a turn counts in the minute its speech ended)"]
    rows = [
        [
            str(row["minute"]),
            str(row["utterances"]),
            str(row["answered"]),
            str(row["errors"]),
            f"{_fmt(row['endpointing_p50_ms'])} / {_fmt(row['endpointing_p95_ms'])}",
            _fmt(row["daphne_mb"], 1),
            _fmt(row["total_mb"], 1),
            _fmt(row["server_cpu_percent"]),
            _fmt(row["other_cpu_percent"]),
        ]
        for row in results["per_minute"]
    ]
    out += _table(
        ["minute", "utterances", "answered", "errors", "endpoint p50/p95 ms", "daphne MB", "total MB"]
        + ["server CPU %", "other CPU %"],
        rows,
    )
    latency = results["latency"]["endpointing_ms"]
    out += [
        "",
        f"Utterances sent {talk['utterances_sent']}, answered {talk['turns_answered']} {talk['statuses']}; "
        f"finals received {talk['finals_received']}, stored {_fmt(talk['finals_stored'])}",
        f"Errors by code {talk['errors_by_code'] or 'none'}; sessions {talk['sessions']} "
        f"({talk['conversation_ids']} conversations, ended {talk.get('end_reasons')}); "
        f"session errors {talk['session_errors'] or 'none'}",
        f"Endpointing over the soak p50 / p95 / max {_fmt(latency['p50'])} / {_fmt(latency['p95'])} / "
        f"{_fmt(latency['max'])} ms ({latency['count']} turns); client send lag max "
        f"{_fmt(talk['client_send_lag_ms_max'])} ms",
        f"\nRan in {results['duration_s']:.0f} s: {results['command']}",
    ]
    return "\n".join(out)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"
