"""``python -m bench.soak``: several users talk to one real server for minutes; does its memory settle?

Each user holds its own conversation and speaks the corpus clips in turn at real
time through :class:`bench.client.Conversation` (silence between utterances and
while the reply plays), each starting at a different place in the corpus, until
the soak's end; a session the server ends is reopened as a new conversation.
The server is a real daphne with the real engines (Whisper, webrtcvad,
espeak-ng, the offline responder unless ``--server-env`` says otherwise).

Resident memory is read from ``/proc`` for daphne and for its TTS worker
processes, separately and together: idle, at the start (after a warm-up in which
the users are already talking, so one-off allocations are behind us), every few
seconds, at the end (users still talking, comparable with the start), and once
every session has closed.  Beside it: turns answered against utterances sent,
finals stored against finals the clients received, errors by code and the
endpointing latency minute by minute, so drift shows.  ``--project`` serves
another checkout (the code before a change) with this harness.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import machine
from bench.__main__ import _assignment
from bench.client import Conversation, SessionResult
from bench.corpus import Clip, bench_order, load_clips
from bench.load import START_STAGGER_S
from bench.procstat import MB, peak_rss_bytes, sample, tree_rss
from bench.runner import log
from bench.server import ROOT, BenchServer, base_env, prepare_database
from bench.soak_report import render, summarize

IDLE_SETTLE_S = 2.0
CLOSED_SETTLE_S = 5.0
"""After the last session closes: time for the server to finish storing and release its buffers."""
RECONNECT_PAUSE_S = 2.0


@dataclass
class SoakOptions:
    """What to run; :func:`parse_args` builds it from the command line."""

    users: int = 4
    minutes: float = 10.0
    warmup_s: float = 60.0
    sample_s: float = 5.0
    think_s: float = 1.5
    server_env: dict[str, str] = field(default_factory=dict)
    project: Path = ROOT
    seed: int = 1


@dataclass(frozen=True)
class Reading:
    """The server's memory and CPU at one moment, ``at_s`` seconds after the soak's start."""

    at_s: float
    label: str
    rss: dict[int, int]
    """Resident bytes by process id, daphne first, then its TTS workers."""
    cpu_tree_s: float
    cpu_machine_s: float
    cpu_self_s: float

    def figures(self) -> dict[str, Any]:
        main, *workers = self.rss.values()
        return {
            "at_s": round(self.at_s, 1),
            "label": self.label,
            "daphne_mb": round(main / MB, 1),
            "workers_mb": round(sum(workers) / MB, 1),
            "workers": len(workers),
            "total_mb": round(sum(self.rss.values()) / MB, 1),
            "rss_by_pid_mb": {str(pid): round(rss / MB, 1) for pid, rss in self.rss.items()},
            "cpu_tree_s": round(self.cpu_tree_s, 2),
            "cpu_machine_s": round(self.cpu_machine_s, 2),
            "cpu_self_s": round(self.cpu_self_s, 2),
        }


@dataclass
class MemoryLog:
    """Readings of one server process tree, taken off the event loop so audio pacing never waits."""

    pid: int
    origin: float = 0.0
    readings: list[Reading] = field(default_factory=list)

    async def read(self, label: str = "") -> Reading:
        reading = await asyncio.to_thread(self._read, label)
        self.readings.append(reading)
        return reading

    def _read(self, label: str) -> Reading:
        at = time.monotonic() - self.origin
        rss = tree_rss(self.pid)
        cpu = sample(self.pid)
        return Reading(at, label, rss, cpu.cpu_tree, cpu.cpu_machine, cpu.cpu_self)

    async def every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(ProcessLookupError):
                await self.read()


@dataclass
class UserSession:
    """One conversation a soak user held: the ``session`` event and what the client saw."""

    user: int
    info: dict[str, Any]
    result: SessionResult


@dataclass
class SoakRun:
    """What one soak produced, for :func:`bench.soak_report.summarize`."""

    readings: list[Reading]
    sessions: list[UserSession]
    origin: float
    """The soak's start (after the warm-up) on the client's monotonic clock."""
    peak_daphne_bytes: int


def _until(deadline: float, clips: Iterator[Clip]) -> Iterator[Clip]:
    """The next clips, as long as the deadline has not passed (then the conversation ends)."""
    for clip in clips:
        if time.monotonic() >= deadline:
            return
        yield clip


async def _user(
    index: int, url: str, token: str, clips: list[Clip], *, think_s: float, delay_s: float, end_at: float
) -> list[UserSession]:
    """One user talking until ``end_at``: one conversation, or a new one after the server ends it."""
    await asyncio.sleep(delay_s)
    spoken = itertools.cycle(clips)
    sessions: list[UserSession] = []
    while time.monotonic() < end_at:
        conversation = Conversation(url, token, _until(end_at, spoken), think_s=think_s)
        result = await conversation.run()
        sessions.append(UserSession(index, conversation.session_info, result))
        if result.error:
            log(f"user {index + 1}: session ended: {result.error}")
            await asyncio.sleep(RECONNECT_PAUSE_S)
    return sessions


async def _soak(server: BenchServer, token: str, clips: list[Clip], options: SoakOptions) -> SoakRun:
    memory = MemoryLog(server.pid)
    await asyncio.sleep(IDLE_SETTLE_S)
    memory.origin = time.monotonic() + options.warmup_s
    end_at = memory.origin + options.minutes * 60
    _log_reading(await memory.read("idle"))
    rng = random.Random(options.seed)
    users = []
    for index in range(options.users):
        offset = index * len(clips) // options.users  # users speak different clips at the same time
        user = _user(
            index,
            server.url,
            token,
            clips[offset:] + clips[:offset],
            # People pause differently: each user's silence before speaking is its own.
            think_s=options.think_s * rng.uniform(0.5, 1.5),
            delay_s=rng.uniform(0, START_STAGGER_S),
            end_at=end_at,
        )
        users.append(asyncio.create_task(user, name=f"soak-user-{index}"))
    sampler = asyncio.create_task(memory.every(options.sample_s), name="soak-sampler")
    try:
        for minute in itertools.count():
            at = min(memory.origin + 60 * minute, end_at)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            label = "start" if minute == 0 else "end" if at >= end_at else f"minute {minute}"
            _log_reading(await memory.read(label))
            if at >= end_at:
                break
        sessions = [session for done in await asyncio.gather(*users) for session in done]
    finally:
        sampler.cancel()
        for task in users:
            task.cancel()
        await asyncio.gather(sampler, *users, return_exceptions=True)
    await asyncio.sleep(CLOSED_SETTLE_S)
    _log_reading(await memory.read("closed"))
    return SoakRun(
        readings=sorted(memory.readings, key=lambda r: r.at_s),
        sessions=sessions,
        origin=memory.origin,
        peak_daphne_bytes=peak_rss_bytes(server.pid),
    )


def _log_reading(reading: Reading) -> None:
    figures = reading.figures()
    log(
        f"{figures['label']}: daphne {figures['daphne_mb']} MB, "
        f"{figures['workers']} TTS worker(s) {figures['workers_mb']} MB"
    )


def _stored(database: Path) -> dict[str, Any]:
    """Voice transcripts and conversation endings as the server left them in its SQLite file."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        turn_ids = [row[0] for row in db.execute("SELECT turn_id FROM conversations_turn")]
        ends = dict(
            db.execute("SELECT end_reason, COUNT(*) FROM conversations_conversation GROUP BY end_reason")
        )
    return {"turn_ids": turn_ids, "end_reasons": {reason or "open": n for reason, n in ends.items()}}


def _tree_state(project: Path) -> dict[str, Any]:
    """The commit and the uncommitted changes of the checkout measured."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True)
        return result.stdout.strip()

    return {
        "path": str(project),
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "status": git("status", "--short").splitlines(),
    }


def run(options: SoakOptions, command: str) -> dict[str, Any]:
    """Run the soak and return the results as one JSON-ready dictionary."""
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "machine": machine.describe(),
        "project": _tree_state(options.project),
        "options": {
            "users": options.users,
            "minutes": options.minutes,
            "warmup_s": options.warmup_s,
            "sample_s": options.sample_s,
            "think_s": options.think_s,
            "server_env": options.server_env,
            "seed": options.seed,
        },
    }
    clips = load_clips(bench_order())
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        limits = {
            "STREAM_MAX_SESSIONS_PER_USER": str(max(4, options.users)),
            "STREAM_MAX_SESSIONS": str(max(32, options.users)),
        }
        env = base_env(workdir, limits | options.server_env)
        log(f"preparing the database ({options.project})")
        token = prepare_database(workdir, options.project)
        log(f"soak: {options.users} users x {options.minutes:g} min after {options.warmup_s:g} s warm-up")
        with BenchServer(workdir, env, name="soak", root=options.project) as server:
            soak = asyncio.run(_soak(server, token, clips, options))
        # Read once daphne has exited: its graceful shutdown has stored all it is going to.
        stored = None if "DATABASE_URL" in env else _stored(workdir / "bench.sqlite3")
    results |= summarize(soak, stored, options.minutes)
    results["machine"]["loadavg_end"] = machine.loadavg()
    results["duration_s"] = round(time.monotonic() - began, 1)
    return results


def parse_args(argv: list[str]) -> tuple[SoakOptions, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=4, help="concurrent users (default 4)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length after warm-up (default 10)")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds of talking before the start reading (default 60)"
    )
    parser.add_argument(
        "--sample-every", type=float, default=5.0, help="seconds between readings (default 5)"
    )
    parser.add_argument(
        "--think", type=float, default=1.5, help="mean seconds of silence before each utterance (default 1.5)"
    )
    parser.add_argument(
        "--server-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for the server (repeatable)",
    )
    parser.add_argument(
        "--project", type=Path, default=ROOT, help="the checkout the server runs (default: this one)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, help="JSON file (default bench-results/soak-<timestamp>.json)")
    args = parser.parse_args(argv)
    if args.users < 1 or args.minutes <= 0 or args.warmup < 0 or args.sample_every <= 0:
        parser.error("--users and --minutes and --sample-every must be positive, --warmup not negative")
    options = SoakOptions(
        users=args.users,
        minutes=args.minutes,
        warmup_s=args.warmup,
        sample_s=args.sample_every,
        think_s=args.think,
        server_env=dict(args.server_env),
        project=args.project.resolve(),
        seed=args.seed,
    )
    output = args.output or ROOT / "bench-results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    return options, output


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options, output = parse_args(argv)
    results = run(options, shlex.join(["python", "-m", "bench.soak", *argv]))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))
    log(f"results written to {output}")


if __name__ == "__main__":
    main()
