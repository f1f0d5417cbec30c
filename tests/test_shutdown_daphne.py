"""SIGTERM to one of two real daphne workers on the Redis channel layer reaches sessions on both."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import websockets

from tests.speech import load_clip, silence

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="REDIS_URL is not set: the cross-worker broadcast needs Redis"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def _wait_http(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # 503 while the model loads is still an answering server
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"daphne on {port} did not answer")


@pytest.fixture
def servers(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        SECRET_KEY="shutdown-test",
        DEBUG="0",
        REDIS_URL=REDIS_URL.rsplit("/", 1)[0] + "/5",  # a Redis database of its own
        STREAM_BARGE_IN="0",
        STREAM_VAD_SILENCE_MS="3000",
        LOG_LEVEL="WARNING",
    )
    _manage(env, "migrate", "--noinput")
    _manage(
        env, "shell", "-c", "from django.contrib.auth.models import User; User.objects.create_user('sam')"
    )
    token = _manage(env, "create_api_token", "sam").strip().splitlines()[-1]
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "voicesite.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"daphne-{port}.log", "w"),
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait_http(port)
        yield ports, procs, token, tmp_path / "db.sqlite3"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


async def _talk(port: int, token: str) -> tuple[list[dict], int | None]:
    """Connect, start an utterance that never pauses, and collect events until the socket closes."""
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
        try:
            async for raw in ws:
                messages.append(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        return messages, ws.close_code


async def test_sigterm_to_one_worker_tells_every_session_on_every_worker(servers) -> None:
    ports, procs, token, db = servers
    sessions = [asyncio.create_task(_talk(port, token)) for port in ports]
    await asyncio.sleep(6)  # both utterances are in progress (the silence timeout is 3 s)
    procs[0].send_signal(signal.SIGTERM)
    results = await asyncio.wait_for(asyncio.gather(*sessions), 60)
    for messages, close_code in results:
        kinds = [m["type"] for m in messages]
        assert "speech_started" in kinds
        assert any(m["type"] == "info" and "shutting down" in m["message"] for m in messages)
        errors = [m for m in messages if m["type"] == "error"]
        assert [(e["code"], e["recoverable"]) for e in errors] == [("SHUTTING_DOWN", False)]
        finals = [m for m in messages if m["type"] == "final_transcript"]
        assert len(finals) == 1 and "forward" in finals[0]["text"].lower()
        assert close_code == 1012
    assert procs[0].wait(30) == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select t.user_text, c.end_reason from conversations_turn t "
            "join conversations_conversation c on c.id = t.conversation_id"
        ).fetchall()
    assert len(rows) == 2 and all(
        "forward" in text.lower() and reason == "server_shutdown" for text, reason in rows
    )
