"""The benchmark's stages in order, from in-process ASR cost to conversations against real servers."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import asr_cost, machine, summary
from bench.client import TurnRecord
from bench.corpus import Clip, bench_order, load_clips
from bench.endpoint import Endpoint, find_endpoint
from bench.load import LevelRun, assign, run_level
from bench.procstat import MB, sample
from bench.server import BenchServer, base_env, prepare_database
from bench.stats import median
from streaming.config import StreamConfig

IDLE_SETTLE_S = 2.0


@dataclass
class BenchOptions:
    """What to run; :mod:`bench.__main__` builds it from the command line."""

    latency_clips: list[str]
    sessions: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 24])
    session_clips: int = 3
    repeats: int = 2
    asr_threads: list[int] = field(default_factory=lambda: [1, 2])
    asr_workers: list[int] = field(default_factory=lambda: [1, 2])
    asr_calls: int = 6
    server_env: dict[str, str] = field(default_factory=dict)
    openai_base_url: str | None = None
    openai_model: str | None = None
    think_s: float = 0.8
    seed: int = 1


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(options: BenchOptions, command: str) -> dict[str, Any]:
    """Run every stage and return the results as one JSON-ready dictionary."""
    began = time.monotonic()
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "machine": machine.describe(),
    }
    capacity_clips = load_clips(bench_order())
    latency_clips = load_clips(options.latency_clips)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        env = base_env(workdir, options.server_env)
        config = StreamConfig.from_env(env)
        results["server_config"] = _config_figures(config)
        results["options"] = {
            "latency_clips": options.latency_clips,
            "sessions": options.sessions,
            "session_clips": options.session_clips,
            "repeats": options.repeats,
            "think_s": options.think_s,
            "server_env": options.server_env,
        }
        log(f"ASR cost: threads {options.asr_threads} x workers {options.asr_workers}")
        results["asr_cost"] = asyncio.run(
            asr_cost.measure(latency_clips, options.asr_threads, options.asr_workers, options.asr_calls)
        )
        used = _used_clips(latency_clips, capacity_clips, options)
        log(f"batch transcription of {len(used)} clips")
        batch = asyncio.run(asr_cost.batch_transcripts(used, config))
        batch_by_clip = {clip.name: result for clip, result in zip(used, batch, strict=True)}
        log("preparing the database")
        token = prepare_database(workdir)
        offline = _offline_stage(workdir, env, token, latency_clips, capacity_clips, options)
        openai = _openai_stage(workdir, env, token, latency_clips, options)
    bound_ms = config.vad_silence_ms + 500
    most = summary.capacity(offline.levels, bound_ms)
    results["engines"] = offline.engines
    results["latency"] = {"offline": offline.latency, "openai": openai}
    results["capacity"] = {"bound_ms": bound_ms, "levels": offline.levels, "max_sessions_within_bound": most}
    results["memory"] = summary.memory(offline.idle, offline.levels)
    for level in offline.levels:
        level["batch_wer"] = summary.accuracy(offline.turns[level["sessions"]], batch_by_clip)["batch_wer"]
    everything = [turn for turns in offline.turns.values() for turn in turns]
    results["accuracy"] = {
        "latency_run": summary.accuracy(offline.turns[1], batch_by_clip),
        "all_runs": summary.accuracy(everything, batch_by_clip),
    }
    results["targets"] = summary.targets(
        config.vad_silence_ms, offline.latency, most, results["memory"], results["accuracy"]["all_runs"]
    )
    results["machine"]["loadavg_end"] = machine.loadavg()
    results["duration_s"] = round(time.monotonic() - began, 1)
    return results


def _config_figures(config: StreamConfig) -> dict[str, Any]:
    return {
        "model": config.model_whisper,
        "asr_cpu_threads": config.asr_cpu_threads,
        "asr_workers": config.asr_workers,
        "vad_silence_ms": config.vad_silence_ms,
        "partial_interval_ms": config.partial_interval_ms,
        "speculative_final": config.speculative_final,
        "barge_in": config.barge_in,
        "tts_workers": config.tts_worker_processes,
    }


def _used_clips(latency: list[Clip], capacity_clips: list[Clip], options: BenchOptions) -> list[Clip]:
    names = {clip.name for clip in latency}
    for n in options.sessions:
        if n > 1:
            names.update(
                clip.name for plan in assign(capacity_clips, n, options.session_clips) for clip in plan
            )
    return [clip for clip in capacity_clips if clip.name in names]


def _runs(
    server: BenchServer, token: str, plans: list[list[Clip]], options: BenchOptions, label: str
) -> list[LevelRun]:
    runs = []
    for repeat in range(options.repeats):
        log(f"{label}: repeat {repeat + 1}/{options.repeats}")
        run_ = asyncio.run(
            run_level(server, token, plans, seed=options.seed + repeat, think_s=options.think_s)
        )
        errors = [r.error for r in run_.results if r.error]
        if errors:
            log(f"{label}: session errors: {errors[:3]}")
        runs.append(run_)
    return runs


def _idle(server: BenchServer) -> dict[str, float]:
    time.sleep(IDLE_SETTLE_S)
    readings = []
    for _ in range(5):
        readings.append(sample(server.pid))
        time.sleep(0.2)
    return {
        "rss_mb": median((r.rss_main / MB for r in readings), 1) or 0.0,
        "tree_rss_mb": median((r.rss_tree / MB for r in readings), 1) or 0.0,
    }


@dataclass
class _Offline:
    """What the offline-responder server produced."""

    idle: dict[str, float]
    latency: dict[str, Any]
    levels: list[dict[str, Any]]
    turns: dict[int, list[TurnRecord]]
    """Every turn spoken at each session count (1: the latency run), all repeats."""
    engines: dict[str, Any]


def _offline_stage(
    workdir: Path,
    env: dict[str, str],
    token: str,
    latency_clips: list[Clip],
    capacity_clips: list[Clip],
    options: BenchOptions,
) -> _Offline:
    limit = str(max(options.sessions + [4]))
    server_env = env | {
        "STREAM_MAX_SESSIONS_PER_USER": limit,
        "STREAM_MAX_SESSIONS": str(max(32, int(limit))),
    }
    log("starting the server (offline responder)")
    with BenchServer(workdir, server_env, name="offline") as server:
        idle = _idle(server)
        log(f"idle server RSS {idle['rss_mb']} MB")
        latency_runs = _runs(server, token, [latency_clips], options, f"latency, {len(latency_clips)} clips")
        latency = summary.summarize_runs(latency_runs)
        levels = [latency] if 1 in options.sessions else []
        turns = {1: [turn for run in latency_runs for turn in run.turns]}
        for n in options.sessions:
            if n == 1:
                continue
            plans = assign(capacity_clips, n, options.session_clips)
            runs = _runs(server, token, plans, options, f"{n} sessions")
            levels.append(summary.summarize_runs(runs))
            turns[n] = [turn for run in runs for turn in run.turns]
    return _Offline(idle, latency, levels, turns, latency_runs[0].session_info.get("engines", {}))


def _openai_stage(
    workdir: Path, env: dict[str, str], token: str, clips: list[Clip], options: BenchOptions
) -> dict[str, Any]:
    endpoint, how = find_endpoint(options.openai_base_url, options.openai_model)
    if endpoint is None:
        log(f"OpenAI-compatible latency skipped: {how}")
        return {"skipped": how}
    return _openai_latency(workdir, env, token, clips, options, endpoint, how)


def _openai_latency(
    workdir: Path,
    env: dict[str, str],
    token: str,
    clips: list[Clip],
    options: BenchOptions,
    endpoint: Endpoint,
    how: str,
) -> dict[str, Any]:
    log(f"starting the server with {how}")
    with BenchServer(workdir, env | endpoint.server_env(), name="openai") as server:
        runs = _runs(server, token, [clips], options, "latency (OpenAI-compatible)")
    return summary.summarize_runs(runs) | {"endpoint": endpoint.base_url, "model": endpoint.model}
