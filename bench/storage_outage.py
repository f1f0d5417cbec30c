"""``python -m bench.storage_outage``: final transcripts sent against stored when the database goes away.

One user speaks corpus clips at real time (:class:`bench.client.Conversation`) to a
real daphne on SQLite with the real engines, and mid-conversation the database is
taken away for real:

- ``lock``: another connection holds the SQLite write lock (``BEGIN IMMEDIATE``) for
  ``--outage-s`` seconds, as a long writer in another process would;
- ``move``: the database file (with its ``-wal``/``-shm``) is moved away for ``--move-s``
  seconds, then back;
- ``kill``: the write lock is held, the server is killed (SIGKILL) half-way through the
  outage, the lock released and a fresh server started on the same database.

The user talks on for a while after the outage, the session ends, and the script waits
up to ``--settle-s`` for the server to store what it kept.  Per run it prints the
distinct final transcripts the client received, how many of them are stored (by
transcript id), what the client was told (``STORAGE_DELAYED`` errors) and what ``/health``
said mid-outage.  The database is configured as ``--database`` says: ``url``
(``DATABASE_URL=sqlite:///…``, as in the issue's probe) or ``path`` (``SQLITE_PATH``).
``--project`` serves another checkout (the code before a change) with this harness.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.client import Conversation, SessionResult
from bench.corpus import Clip, bench_order, load_clips
from bench.runner import log
from bench.server import ROOT, BenchServer, base_env, prepare_database

SCENARIOS = ("lock", "move", "kill")
CLIPS = 12


@dataclass
class Options:
    scenarios: tuple[str, ...] = SCENARIOS
    runs: int = 1
    database: str = "url"
    outage_s: float = 30.0
    move_s: float = 12.0
    lead_in_s: float = 10.0
    tail_s: float = 15.0
    settle_s: float = 90.0
    project: Path = ROOT
    json_path: Path | None = None


@dataclass
class Outcome:
    """One run: what the client saw against what the database holds once the server settled."""

    scenario: str
    run: int
    sent: int
    """Distinct final transcripts the client received."""
    stored: int
    """Of those, the ones stored (by transcript id)."""
    rows: int
    """Turns stored in all (a turn finalized at disconnect may never reach the client)."""
    storage_delayed: int
    health: str
    """``/health`` mid-outage: HTTP-level status and the database component's state."""
    settled_s: float

    @property
    def lost(self) -> int:
        return self.sent - self.stored


def clips_until(deadline: float, clips: list[Clip]) -> Iterator[Clip]:
    """The clips in turn, round and round, until ``deadline`` (monotonic)."""
    for clip in itertools.cycle(clips):
        if time.monotonic() >= deadline:
            return
        yield clip


class WriteLock:
    """Another connection holding the database's write lock."""

    def __init__(self, db: Path) -> None:
        self._conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=60)

    def acquire(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._conn.close()


def _move(db: Path, suffix_from: str, suffix_to: str) -> None:
    for extra in ("", "-wal", "-shm"):
        source = Path(f"{db}{extra}{suffix_from}")
        if source.exists():
            os.replace(source, Path(f"{db}{extra}{suffix_to}"))


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db, timeout=60) as conn:
        return [row[0].replace("-", "") for row in conn.execute("select turn_id from conversations_turn")]


def _health_summary(server: BenchServer) -> str:
    report = server.health()
    if report is None:
        return "no answer"
    database = report["components"]["database"]
    writes = database.get("writes", {})
    suffix = f", writes {writes['state']}, {writes['pending']} pending" if writes else ""
    return f"{report['status']} (database {database['state']}{suffix})"


async def run_once(scenario: str, number: int, options: Options) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix=f"outage-{scenario}-"))
    token = await asyncio.to_thread(prepare_database, workdir, options.project)
    db = workdir / "bench.sqlite3"
    overrides = {"CONVERSATION_JOURNAL_DIR": str(workdir / "journal"), "STREAM_BARGE_IN": "0"}
    if options.database == "url":
        overrides["DATABASE_URL"] = f"sqlite:///{db}"
    env = base_env(workdir, overrides)
    server = BenchServer(workdir, env, name="server", root=options.project)
    await asyncio.to_thread(server.start)
    restarted: BenchServer | None = None
    outage_s = options.move_s if scenario == "move" else options.outage_s
    deadline = time.monotonic() + options.lead_in_s + outage_s + options.tail_s
    clips = load_clips(bench_order()[:CLIPS])
    conversation = Conversation(server.url, token, clips_until(deadline, clips), think_s=1.0)
    talking = asyncio.create_task(conversation.run())
    try:
        await asyncio.sleep(options.lead_in_s)
        log(f"{scenario} #{number}: database away for {outage_s:g} s")
        health = await take_database_away(scenario, db, server, outage_s)
        if scenario == "kill":
            restarted = BenchServer(workdir, env, name="restarted", root=options.project)
            await asyncio.to_thread(restarted.start)
        result: SessionResult = await talking
    finally:
        talking.cancel()
    settled_at = time.monotonic()
    sent = {final_id.replace("-", "") for final_id in result.final_ids}
    while time.monotonic() - settled_at < options.settle_s:
        if sent <= set(await asyncio.to_thread(stored_ids, db)):
            break
        await asyncio.sleep(1.0)
    settled_s = time.monotonic() - settled_at
    for running in (server, restarted):
        if running is not None:
            await asyncio.to_thread(running.stop)
    rows = await asyncio.to_thread(stored_ids, db)
    return Outcome(
        scenario,
        number,
        sent=len(sent),
        stored=len(sent & set(rows)),
        rows=len(rows),
        storage_delayed=result.error_codes.get("STORAGE_DELAYED", 0),
        health=health,
        settled_s=round(settled_s, 1),
    )


async def take_database_away(scenario: str, db: Path, server: BenchServer, outage_s: float) -> str:
    """Run the scenario's outage; return what ``/health`` said half-way through."""
    if scenario == "move":
        away = f".away-{uuid.uuid4().hex[:6]}"
        await asyncio.to_thread(_move, db, "", away)
        await asyncio.sleep(outage_s / 2)
        health = await asyncio.to_thread(_health_summary, server)
        await asyncio.sleep(outage_s / 2)
        await asyncio.to_thread(_move, db, away, "")
        return health
    lock = WriteLock(db)
    await asyncio.to_thread(lock.acquire)
    try:
        await asyncio.sleep(outage_s / 2)
        health = await asyncio.to_thread(_health_summary, server)
        if scenario == "kill":
            os.kill(server.pid, signal.SIGKILL)
        await asyncio.sleep(outage_s / 2)
    finally:
        await asyncio.to_thread(lock.release)
    return health


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default all")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario (default 1)")
    parser.add_argument("--database", choices=("url", "path"), default="url")
    parser.add_argument("--outage-s", type=float, default=30.0, help="lock and kill outages (default 30)")
    parser.add_argument("--move-s", type=float, default=12.0, help="how long the file is away (default 12)")
    parser.add_argument("--settle-s", type=float, default=90.0)
    parser.add_argument("--project", type=Path, default=ROOT, help="checkout to serve (default this one)")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    args = parser.parse_args(argv)
    return Options(
        scenarios=tuple(args.scenario or SCENARIOS),
        runs=args.runs,
        database=args.database,
        outage_s=args.outage_s,
        move_s=args.move_s,
        settle_s=args.settle_s,
        project=args.project.resolve(),
        json_path=args.json,
    )


async def main(options: Options) -> list[Outcome]:
    outcomes = []
    for scenario in options.scenarios:
        for number in range(1, options.runs + 1):
            outcome = await run_once(scenario, number, options)
            log(f"{scenario} #{number}: {outcome}")
            outcomes.append(outcome)
    return outcomes


def render(outcomes: list[Outcome], options: Options) -> str:
    lines = [
        f"project {options.project}, database configured by {options.database}",
        f"{'scenario':<9}{'run':>4}{'finals sent':>13}{'stored':>8}{'lost':>6}{'rows':>6}"
        f"{'STORAGE_DELAYED':>17}{'settled s':>11}  /health mid-outage",
    ]
    for o in outcomes:
        lines.append(
            f"{o.scenario:<9}{o.run:>4}{o.sent:>13}{o.stored:>8}{o.lost:>6}{o.rows:>6}"
            f"{o.storage_delayed:>17}{o.settled_s:>11}  {o.health}"
        )
    total_sent = sum(o.sent for o in outcomes)
    total_stored = sum(o.stored for o in outcomes)
    lines.append(f"total: {total_stored} of {total_sent} finals the client saw are stored")
    return "\n".join(lines)


if __name__ == "__main__":
    opts = parse_args()
    results = asyncio.run(main(opts))
    print(render(results, opts))
    if opts.json_path is not None:
        opts.json_path.write_text(json.dumps([asdict(o) for o in results], indent=2))
