"""A real daphne killed (SIGKILL) during a database outage loses no final transcript its client saw.

The SQLite file is write-locked by another connection while a client types
messages and sees their final transcripts; the server is then killed, the lock
released, and two fresh workers start: their start-up replay stores every final
exactly once, in order, and ends the reply the kill cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from tests.support.daphne_process import DAPHNE, ROOT, free_port, server_env, user_with_token, wait_http

MESSAGES = ["first thing", "second thing", "third thing"]


class Daphne:
    """One daphne worker serving the project with ``env``; :meth:`stop` kills it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self._log = open(log, "a")  # closed in stop()
        self.proc = subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(self.port)] + ["voicesite.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()


@pytest.fixture
def crash_env(tmp_path):
    env = server_env(tmp_path, SQLITE_BUSY_TIMEOUT_S="0.5")
    return env, user_with_token(env, "kim"), tmp_path


async def _type_then_kill(server: Daphne, token: str, lock: sqlite3.Connection) -> list[dict]:
    """Connect, take the database away from writers, type each message and wait for its final;
    kill the server the moment the last final arrives, its session still open."""
    finals = []
    headers = {"Authorization": f"Bearer {token}"}
    url = f"ws://127.0.0.1:{server.port}/ws"
    with contextlib.suppress(websockets.ConnectionClosed):
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            assert json.loads(await ws.recv())["type"] == "session"
            await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")
            for text in MESSAGES:
                await ws.send(json.dumps({"type": "text", "text": text}))
                while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))[
                    "type"
                ] != "final_transcript":
                    pass
                finals.append(message)
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
    return finals


def _stored(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute("select turn_id, user_text from conversations_turn order by id").fetchall()


def _statuses(db: Path) -> list[str]:
    with sqlite3.connect(db, timeout=10) as conn:
        return [status for (status,) in conn.execute("select status from conversations_turn order by id")]


def _wait_stored(db: Path, count: int, timeout: float = 60) -> list[tuple[str, str]]:
    """The stored turns once there are ``count`` and none still waits for a reply (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while (len(stored := _stored(db)) < count or "pending" in _statuses(db)) and time.monotonic() < deadline:
        time.sleep(0.3)
    return stored


async def test_finals_survive_a_killed_server_and_are_stored_once_by_the_next(crash_env) -> None:
    env, token, workdir = crash_env
    db = workdir / "db.sqlite3"
    first = Daphne(env, workdir / "daphne.log")
    lock = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(wait_http, first.port)
        finals = await _type_then_kill(first, token, lock)
    finally:
        first.stop()
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
    assert [f["text"] for f in finals] == MESSAGES
    assert _stored(db) == []

    workers = [Daphne(env, workdir / "daphne.log") for _ in range(2)]
    try:
        stored = await asyncio.to_thread(_wait_stored, db, len(finals))
    finally:
        for worker in workers:
            worker.stop()
    assert [(text, turn_id.replace("-", "")) for turn_id, text in stored] == [
        (f["text"], f["id"].replace("-", "")) for f in finals
    ], (workdir / "daphne.log").read_text()[-3000:]
    assert list((workdir / "journal").glob("*/*.jsonl")) == []
    # The reply in progress at the kill will never be finished: the replay ends it as cancelled,
    # and closes the conversation, which no other session holds.
    assert _statuses(db)[-1] == "cancelled" and "pending" not in _statuses(db)
    with sqlite3.connect(db, timeout=10) as conn:
        ends = conn.execute("select end_reason, live_sessions from conversations_conversation").fetchall()
    assert ends == [("server_shutdown", "[]")]
