"""SIGTERM to real daphne workers: the worker's sessions are told, their utterances stored, their
sockets closed with 1012; another worker's sessions go on undisturbed.

One worker with four users mid-utterance, and one of two workers sharing a Redis channel layer as
in production (a rolling restart must move only the stopping worker's clients).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import websockets

from tests.support.daphne_process import DAPHNE, ROOT, free_port, server_env, user_with_token, wait_http
from tests.support.speech import load_clip, silence

REDIS_URL = os.environ.get("REDIS_URL", "")

needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL is not set: two workers share a Redis channel layer in production"
)
CLOSE_TIMEOUT_S = 30


def _start_servers(tmp_path: Path, count: int, redis_url: str | None):
    changes = {"STREAM_BARGE_IN": "0", "STREAM_VAD_SILENCE_MS": "3000"}
    if redis_url:
        changes["REDIS_URL"] = redis_url
    env = server_env(tmp_path, **changes)
    token = user_with_token(env, "sam")
    ports = [free_port() for _ in range(count)]
    procs = [
        subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(port)]
            + ["--application-close-timeout", str(CLOSE_TIMEOUT_S), "voicesite.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"daphne-{port}.log", "w"),
        )
        for port in ports
    ]
    return ports, procs, token


def _stop_servers(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.fixture
def servers(tmp_path):
    """Two daphne workers sharing a Redis database of their own and one SQLite file."""
    ports, procs, token = _start_servers(tmp_path, 2, REDIS_URL.rsplit("/", 1)[0] + "/5")
    try:
        for port in ports:
            wait_http(port)
        yield ports, procs, token, tmp_path / "db.sqlite3"
    finally:
        _stop_servers(procs)


@pytest.fixture
def server(tmp_path):
    """One daphne worker on the embedded defaults (in-memory channel layer, SQLite)."""
    ports, procs, token = _start_servers(tmp_path, 1, None)
    try:
        wait_http(ports[0])
        yield ports[0], procs[0], token, tmp_path / "db.sqlite3"
    finally:
        _stop_servers(procs)


async def _talk(port: int, token: str, hang_up: asyncio.Event | None = None) -> tuple[list[dict], int | None]:
    """Connect, start an utterance that never pauses, and collect events until the socket closes
    (or, given ``hang_up``, until it is set: then the client closes)."""
    headers = {"Authorization": f"Bearer {token}"}
    messages: list[dict] = []
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/ws", additional_headers=headers, max_size=None
    ) as ws:
        messages.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        speech = np.concatenate([silence(0.3), load_clip("ps_goforward")]).astype(np.int16).tobytes()
        for start in range(0, len(speech), 3200):
            await ws.send(speech[start : start + 3200])

        async def collect() -> None:
            try:
                async for raw in ws:
                    messages.append(json.loads(raw))
            except websockets.ConnectionClosed:
                pass

        if hang_up is None:
            await collect()
        else:
            collecting = asyncio.create_task(collect())
            await hang_up.wait()
            await ws.close()
            await collecting
        return messages, ws.close_code


def _assert_finalized(results, db: Path) -> None:
    """Every session was told, got its final transcript and 1012, and its turn is stored."""
    for messages, close_code in results:
        kinds = [m["type"] for m in messages]
        assert "speech_started" in kinds
        assert any(m["type"] == "info" and "shutting down" in m["message"] for m in messages)
        errors = [m for m in messages if m["type"] == "error"]
        assert [(e["code"], e["recoverable"]) for e in errors] == [("SHUTTING_DOWN", False)]
        finals = [m for m in messages if m["type"] == "final_transcript"]
        assert len(finals) == 1 and "forward" in finals[0]["text"].lower()
        assert close_code == 1012
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select t.user_text, c.end_reason from conversations_turn t "
            "join conversations_conversation c on c.id = t.conversation_id"
        ).fetchall()
    assert len(rows) == len(results) and all(
        "forward" in text.lower() and reason == "server_shutdown" for text, reason in rows
    )


async def test_sigterm_finalizes_four_sessions_on_one_worker(server) -> None:
    port, proc, token, db = server
    sessions = [asyncio.create_task(_talk(port, token)) for _ in range(4)]
    await asyncio.sleep(6)  # every utterance is in progress (the silence timeout is 3 s)
    proc.send_signal(signal.SIGTERM)
    results = await asyncio.wait_for(asyncio.gather(*sessions), 60)
    assert proc.wait(CLOSE_TIMEOUT_S) == 0
    _assert_finalized(results, db)


@needs_redis
async def test_sigterm_to_one_worker_leaves_the_other_workers_sessions_alone(servers) -> None:
    ports, procs, token, db = servers
    hang_up = asyncio.Event()
    stopping = asyncio.create_task(_talk(ports[0], token))
    staying = asyncio.create_task(_talk(ports[1], token, hang_up))
    await asyncio.sleep(6)  # both utterances are in progress (the silence timeout is 3 s)
    procs[0].send_signal(signal.SIGTERM)
    _assert_finalized([await asyncio.wait_for(stopping, 60)], db)
    assert procs[0].wait(30) == 0
    await asyncio.sleep(2)  # a notice to the other worker would have arrived by now
    hang_up.set()
    messages, close_code = await asyncio.wait_for(staying, 30)
    assert "speech_started" in [m["type"] for m in messages]
    assert not [m for m in messages if m["type"] == "error" or "shutting down" in m.get("message", "")]
    assert close_code == 1000 and procs[1].poll() is None
