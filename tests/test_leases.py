"""A user's sessions counted across workers (``streaming/web/leases.py``), on a private real Redis.

Two :class:`SessionSlots` stand for two worker processes' own counts; the Redis they share is real.
Through the router: a lease another worker holds refuses a new session and lets the client of that
conversation back in.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer

from conversations import services
from streaming.config import StreamConfig
from streaming.web import leases
from streaming.web.leases import SessionPlace
from streaming.web.slots import SessionSlots
from tests.support.daphne_process import free_port
from tests.support.redis_server import RedisServer, redis_layer
from tests.support.wsclient import make_token, make_user, open_client

TWO = StreamConfig().replace(max_sessions_per_user=2)
ONE = StreamConfig().replace(max_sessions_per_user=1)


@pytest.fixture
def redis_server():
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_users_sessions_are_counted_across_workers(redis_server) -> None:
    layer = RedisChannelLayer(hosts=[redis_server.url()])
    worker_a, worker_b = SessionSlots(), SessionSlots()
    assert await SessionPlace(worker_a, 7, "conv-1").take(layer, TWO)
    second = SessionPlace(worker_b, 7, "conv-2")
    assert await second.take(layer, TWO)
    assert not await SessionPlace(worker_b, 7, "conv-3").take(layer, TWO)
    assert worker_b.total == 1, "the refused session gave its slot back"
    assert await SessionPlace(worker_a, 8, "conv-4").take(layer, TWO), "another user"
    # conv-1's client comes back through worker b (a restart; a kill -9 left its lease): let in.
    assert await SessionPlace(worker_b, 7, "conv-1").take(layer, TWO)
    await second.give_back(layer)
    assert worker_b.total == 1
    assert await SessionPlace(worker_b, 7, "conv-3").take(layer, TWO)


async def test_a_refused_session_leaves_the_lease_it_did_not_take(redis_server) -> None:
    """A client resuming its conversation through a full worker, while the conversation's session
    still runs on another (a second tab, a socket not yet seen to drop): the refusal must not free
    that live session's lease, or the user could open one session more than allowed."""
    layer = RedisChannelLayer(hosts=[redis_server.url()])
    assert await SessionPlace(SessionSlots(), 7, "conv-1").take(layer, ONE)
    full = SessionSlots()
    assert full.acquire(8, StreamConfig().replace(max_sessions=1))
    refused = SessionPlace(full, 7, "conv-1")
    assert not await refused.take(layer, ONE.replace(max_sessions=1)), "this worker is full"
    await refused.give_back(layer)
    assert not await SessionPlace(SessionSlots(), 7, "conv-2").take(layer, ONE), "conv-1 still holds it"


async def test_a_lease_no_one_renews_lapses_and_a_renewed_one_does_not(redis_server, monkeypatch) -> None:
    monkeypatch.setattr(leases, "LEASE_S", 1)
    layer = RedisChannelLayer(hosts=[redis_server.url()])
    killed, live = SessionPlace(SessionSlots(), 7, "killed"), SessionPlace(SessionSlots(), 8, "live")
    assert await killed.take(layer, ONE) and await live.take(layer, ONE)
    for _ in range(3):
        await asyncio.sleep(0.6)
        await live.renew(layer)
    assert await SessionPlace(SessionSlots(), 7, "new").take(layer, ONE), "the killed worker's lease lapsed"
    assert not await SessionPlace(SessionSlots(), 8, "new").take(layer, ONE), "the renewed one holds"


async def test_without_redis_each_worker_counts_alone() -> None:
    layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{free_port()}/0"])
    worker_a, worker_b = SessionSlots(), SessionSlots()
    assert await SessionPlace(worker_a, 7, "c1").take(layer, ONE)
    assert await SessionPlace(worker_b, 7, "c2").take(layer, ONE)
    assert not await SessionPlace(worker_a, 7, "c3").take(layer, ONE)


@pytest.mark.django_db(transaction=True)
async def test_a_lease_held_on_another_worker_refuses_a_new_session_but_not_its_own(
    scripted_engines, stream_config, settings, redis_server
) -> None:
    settings.CHANNEL_LAYERS = redis_layer(redis_server.url())
    stream_config(max_sessions_per_user=1)
    alice = await make_user()
    conversation = await sync_to_async(services.start_conversation)(alice, client_kind="api", engines={})
    elsewhere = SessionPlace(SessionSlots(), alice.pk, str(conversation.pk))
    assert await elsewhere.take(get_channel_layer(), settings.STREAM_CONFIG)
    bearer = [(b"authorization", f"Bearer {await make_token(alice)}".encode())]

    refused, _ = await open_client("/ws", bearer)
    error = await refused.until_type("error")
    assert error["code"] == "SESSION_LIMIT" and await refused.until_closed() == 4429

    back, connected = await open_client(f"/ws?conversation={conversation.pk}", bearer)
    assert connected
    session = await back.until_type("session")
    assert session["resumed"] and session["conversation_id"] == str(conversation.pk)
    await back.send(type="text", text="still me")
    await back.until_type("turn_complete")
    await back.close()
