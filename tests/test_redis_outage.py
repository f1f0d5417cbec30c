"""Redis down: sessions go on, hear, answer and store; notices resume when Redis is back.

A private ``redis-server`` plays the outage (the machine's is shared). Before the fix, channels-redis
raised the connection error out of every consumer's wait on the layer: a Redis restart ended every
session of every worker (close 4008) and cancelled the replies in progress.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
from asgiref.sync import sync_to_async

from conversations.models import Turn
from conversations.tokens import revoke_token
from streaming.web import consumer as consumers
from streaming.web.notices import user_group
from streaming.web.redis_layer import ResilientRedisChannelLayer
from tests.support.redis_server import RedisServer, redis_layer
from tests.support.wsclient import connect_as, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def private_redis(settings, monkeypatch):
    monkeypatch.setattr(ResilientRedisChannelLayer, "_outage_logged", False)
    server = RedisServer()
    server.start()
    settings.CHANNEL_LAYERS = redis_layer(server.url())
    try:
        yield server
    finally:
        server.stop()


async def answered(client, text: str) -> None:
    """Send ``text`` and wait for its turn (the n-th ``turn_complete`` of this client) to end."""
    count = len(client.of_type("turn_complete")) + 1
    await client.send(type="text", text=text)
    await client.until(
        lambda m: m.get("type") == "turn_complete" and len(client.of_type("turn_complete")) >= count,
        timeout=20,
    )


async def until(condition, failure: str, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(failure)


def subscribed(server: RedisServer, user_id: int) -> bool:
    members = redis.Redis.from_url(server.url()).zrange(f"asgi:group:{user_group(user_id)}", 0, -1)
    return bool(members)


async def test_sessions_outlive_a_redis_restart_and_notices_resume(
    scripted_engines, stream_config, private_redis, monkeypatch
) -> None:
    monkeypatch.setattr(consumers, "ACCESS_CHECK_INTERVAL_S", 1.0)
    alice = await make_user("alice")
    client = await connect_as(alice)
    await answered(client, "before the outage")
    assert subscribed(private_redis, alice.pk)

    private_redis.stop()
    await until(lambda: ResilientRedisChannelLayer._outage_logged, "the layer never met the outage")
    await answered(client, "during the outage")
    during = await connect_as(alice)  # a session opens without Redis too
    await answered(during, "a new session")

    private_redis.start()  # empty: the restart lost every group
    await until(lambda: not ResilientRedisChannelLayer._outage_logged, "the recovery went unnoticed")
    await until(lambda: subscribed(private_redis, alice.pk), "the sessions did not subscribe again")
    await answered(client, "after the outage")
    await sync_to_async(revoke_token)(alice, (await sync_to_async(alice.api_tokens.earliest)("pk")).pk)
    error = await client.until_type("error", timeout=10)
    assert error["code"] == "UNAUTHORIZED"
    await during.close()
    stored = await sync_to_async(list)(Turn.objects.order_by("created_at").values_list("user_text", "status"))
    assert stored == [
        ("before the outage", "completed"),
        ("during the outage", "completed"),
        ("a new session", "completed"),
        ("after the outage", "completed"),
    ]


async def test_a_revocation_travels_through_redis(
    scripted_engines, stream_config, private_redis, monkeypatch
) -> None:
    """With the periodic check an hour away, only the notice through Redis can end the session."""
    monkeypatch.setattr(consumers, "ACCESS_CHECK_INTERVAL_S", 3600.0)
    alice = await make_user("alice")
    client, other = await connect_as(alice), await connect_as(alice)
    first_token = await sync_to_async(alice.api_tokens.earliest)("pk")
    await sync_to_async(revoke_token)(alice, first_token.pk)
    error = await client.until_type("error", timeout=10)
    assert (error["code"], error["recoverable"]) == ("UNAUTHORIZED", False)
    assert await client.until_closed() == 4401
    await answered(other, "still here")
    await other.close()
