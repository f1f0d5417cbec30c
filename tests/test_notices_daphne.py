"""Between real processes over a real Redis: a daphne worker's session hears of a token revoked in
another process at once, and keeps answering, with the real engines, while Redis is down.

The periodic credential check runs 25 s after the session starts; the revocation here comes within
a few seconds of it and the end is awaited for 15 s, so only the notice can explain the end.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from tests.support.daphne_process import manage, running_daphne, server_env, user_with_token
from tests.support.redis_server import RedisServer


@pytest.fixture
def worker(tmp_path):
    """One daphne worker on a private Redis, its environment, and an API token of user sam."""
    redis_server = RedisServer()
    redis_server.start()
    env = server_env(tmp_path, REDIS_URL=redis_server.url(), STREAM_BARGE_IN="0")
    token = user_with_token(env, "sam")
    try:
        with running_daphne(tmp_path, env) as port:
            yield port, env, token, redis_server
    finally:
        redis_server.stop()


async def next_of(ws, kind: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        if isinstance(message, str) and json.loads(message)["type"] == kind:
            return json.loads(message)


def revoke_all_tokens(env: dict[str, str], username: str) -> None:
    """Revoke from another process, as an administrator's shell would."""
    manage(
        env,
        "shell",
        "-c",
        "from conversations.models import ApiToken; from conversations.tokens import revoke_token\n"
        f"for token in ApiToken.objects.filter(user__username={username!r}):\n"
        "    assert revoke_token(token.user, token.pk)",
    )


async def test_a_worker_hears_of_a_revocation_from_another_process_and_outlives_redis(worker) -> None:
    port, env, token, redis_server = worker
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers) as ws:
        await next_of(ws, "session", 30)
        redis_server.stop()
        await ws.send(json.dumps({"type": "text", "text": "Are you still there?"}))
        await next_of(ws, "tts_chunk", 60)  # the real engines answer without Redis
        await next_of(ws, "turn_complete", 60)

    redis_server.start()
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers) as ws:
        await next_of(ws, "session", 30)
        revoke_all_tokens(env, "sam")
        error = await next_of(ws, "error", 15)
        assert (error["code"], error["recoverable"]) == ("UNAUTHORIZED", False)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4401
