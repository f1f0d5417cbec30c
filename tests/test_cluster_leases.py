"""STREAM_MAX_SESSIONS_PER_USER across real worker processes: two daphne workers behind nginx, on
PostgreSQL and a private Redis, counting one user's sessions through their leases
(``streaming/web/leases.py``).

With a limit of 2, one session on each worker fills it: a third is refused on either worker
(``SESSION_LIMIT``, 4429), also through nginx. One session closing gives its lease back, and the
other worker accepts a new one. A worker killed with -9 gives nothing back: its leases keep
counting until they lapse (``LEASE_S``, not waited for here), and the client of a killed session
is let back in to its own conversation on the surviving worker at once.

It needs what ``tests/test_cluster.py`` needs (nginx, PostgreSQL, Redis), but the workers' Redis
is a ``redis-server`` of the test's own and their database is named for the run, so parallel runs
share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import pytest
import redis.asyncio
import websockets

from streaming.web.leases import LEASE_S
from tests.support.cluster import Cluster, Worker, unavailable_reason
from tests.support.redis_server import RedisServer

_REASON = unavailable_reason()
pytestmark = [pytest.mark.skipif(_REASON is not None, reason=_REASON or ""), pytest.mark.timeout(240)]

LIMIT = 2


@pytest.fixture
def cluster(tmp_path):
    redis_server = RedisServer()
    redis_server.start()
    cluster = Cluster(
        tmp_path,
        database=f"parley_leases_{uuid.uuid4().hex[:12]}",
        redis_url=redis_server.url(),
        STREAM_MAX_SESSIONS_PER_USER=str(LIMIT),
    )
    try:
        cluster.start()
        cluster.token = cluster.create_token("lee")
        yield cluster
    finally:
        cluster.stop()
        redis_server.stop()


class Sessions:
    """One user's WebSocket connections, all closed at the end of the test."""

    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.open: list[websockets.ClientConnection] = []

    async def connect(
        self, url: str, conversation: str | None = None
    ) -> tuple[websockets.ClientConnection, dict]:
        """A connection to ``url`` and the first message the server sent on it."""
        if conversation is not None:
            url = f"{url}?conversation={conversation}"
        ws = await websockets.connect(url, additional_headers=self.headers, open_timeout=30)
        self.open.append(ws)
        return ws, json.loads(await asyncio.wait_for(ws.recv(), 30))

    async def session(
        self, url: str, conversation: str | None = None
    ) -> tuple[websockets.ClientConnection, str]:
        """A session the server accepted, and its conversation id."""
        ws, first = await self.connect(url, conversation)
        assert first["type"] == "session", first
        assert first["resumed"] == (conversation is not None), first
        return ws, first["conversation_id"]

    async def refused(self, url: str) -> None:
        """A new session is refused with SESSION_LIMIT and closed with 4429 (docs/protocol.md)."""
        ws, first = await self.connect(url)
        assert (first["type"], first.get("code")) == ("error", "SESSION_LIMIT"), first
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 4429, ws.close_code

    async def aclose(self) -> None:
        for ws in self.open:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 10)


def _url(worker: Worker) -> str:
    return f"ws://{worker.address}/ws"


async def _leases(client: redis.asyncio.Redis) -> dict[str, float]:
    """Every session lease in the workers' Redis: conversation id -> when it lapses (Redis's clock)."""
    leases: dict[str, float] = {}
    async for key in client.scan_iter(match="*:sessions:user:*"):
        leases.update(
            {member.decode(): score for member, score in await client.zrange(key, 0, -1, withscores=True)}
        )
    return leases


async def _until_leases(client: redis.asyncio.Redis, expected: set[str], timeout: float = 30) -> None:
    """A closing session gives its lease back once it has finalized: wait for that, generously."""
    deadline = time.monotonic() + timeout
    while set(await _leases(client)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"leases {await _leases(client)}, expected {expected}")
        await asyncio.sleep(0.1)


async def test_cluster_session_limit_holds_across_workers(cluster) -> None:
    a, b = cluster.workers
    store = redis.asyncio.Redis.from_url(cluster.redis_url)
    sessions = Sessions(cluster.token)
    try:
        first, on_a = await sessions.session(_url(a))
        _, on_b = await sessions.session(_url(b))
        # Each worker holds one of the user's sessions: only the other's lease can refuse a third.
        await sessions.refused(_url(a))
        await sessions.refused(_url(b))
        await sessions.refused(f"{cluster.ws_url}")  # through nginx, to whichever worker it picks
        assert set(await _leases(store)) == {on_a, on_b}, "a refused session holds no lease"

        await first.close()
        await _until_leases(store, {on_b})
        _, fourth = await sessions.session(_url(b))
        await sessions.refused(_url(a))

        # SIGKILL: nobody gives b's two leases back; they count until they lapse, LEASE_S after
        # their last renewal.
        await asyncio.to_thread(b.kill)
        left = await _leases(store)
        assert set(left) == {on_b, fourth}, left
        seconds, micros = await store.time()
        now = seconds + micros / 1e6
        assert all(now < lapse <= now + LEASE_S for lapse in left.values()), (now, left)
        await sessions.refused(_url(a))
        # The client of a killed session resumes its conversation on a at once: its own lease.
        await sessions.session(_url(a), conversation=on_b)
        renewed = await _leases(store)
        assert set(renewed) == {on_b, fourth} and renewed[on_b] > left[on_b], (left, renewed)
        await sessions.refused(_url(a))
    finally:
        await sessions.aclose()
        await store.aclose()
