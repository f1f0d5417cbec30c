"""A user's sessions counted across every worker, so STREAM_MAX_SESSIONS_PER_USER holds for the
deployment and not for each worker process (behind nginx with N workers it used to allow N times it).

Each session holds a lease in its user's sorted set in Redis: the member is its conversation id,
the score the time the lease lapses, :data:`LEASE_S` after it was taken or last renewed (a session
renews it at every credential check, every 25 s). Keyed by conversation, a client that reconnects
to its conversation takes its own lease over and is never refused for it: after a rolling restart,
and after a worker killed with -9, whose leases no one gave back and which lapse within
:data:`LEASE_S`. Without Redis (not configured, or down) nothing is known across workers and the
worker's own count (``slots.py``) decides alone; it always applies too (``STREAM_MAX_SESSIONS``).
Two sessions on one conversation (two tabs) share a lease: the first to close gives it back and the
other takes it again at its next renewal.
"""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions
from channels_redis.core import RedisChannelLayer

from streaming.config import StreamConfig
from streaming.web.slots import SessionSlots

logger = logging.getLogger(__name__)

LEASE_S = 60
"""How long a lease lasts unless renewed: more than two credential checks (25 s apart)."""
REDIS_TIMEOUT_S = 2.0

_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) + 1)
return 1
"""
"""On Redis's clock (the workers' may differ): drop lapsed leases; refuse a conversation that holds
none when the user is at the limit; else take the lease, or renew it. ARGV: conversation, limit,
lease seconds."""


async def _redis_call(layer, user_id: object, call) -> object | None:
    """``call(connection, key)`` on the user's Redis shard; None without Redis or when it fails.

    The key starts with the channel layer's prefix, as its groups do: deployments (or test runs)
    sharing one Redis with prefixes of their own do not count each other's sessions.
    """
    if not isinstance(layer, RedisChannelLayer):
        return None
    global _unavailable
    key = f"{layer.prefix}:sessions:user:{user_id}"
    try:
        connection = layer.connection(layer.consistent_hash(key))
        result = await asyncio.wait_for(call(connection, key), REDIS_TIMEOUT_S)
    except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:  # a lease is never worth a crash
        if not _unavailable:
            logger.warning("session leases unavailable; this worker counts alone: %r", exc)
        _unavailable = True
        return None
    if _unavailable:
        logger.warning("session leases available again")
    _unavailable = False
    return result


_unavailable = False
"""Whether the last lease call failed: an outage is logged once, not at every session's call."""


class SessionPlace:
    """One session's place: a slot in this worker and, with Redis, its user's lease across workers."""

    def __init__(self, slots: SessionSlots, user_id: object, conversation_id: str) -> None:
        self.slots = slots
        self.user_id = user_id
        self.conversation_id = conversation_id
        self._slot = False
        self._leased = False
        """Whether this session took or renewed its lease: only then is the lease its to give back
        (a refused client resuming a conversation that runs elsewhere must leave that one's lease)."""

    async def take(self, layer, config: StreamConfig) -> bool:
        """False when this worker is full or the user holds the most sessions allowed."""
        if not self.slots.acquire(self.user_id, config):
            return False
        self._slot = True
        limit = config.max_sessions_per_user
        taken = await _redis_call(layer, self.user_id, lambda client, key: self._lease(client, key, limit))
        if taken == 0:
            self.give_back_slot()
            return False
        self._leased = taken == 1
        return True

    async def renew(self, layer) -> None:
        """Extend the lease (taking it again if Redis lost it); never refuses a live session."""
        if await _redis_call(layer, self.user_id, lambda client, key: self._lease(client, key, None)):
            self._leased = True

    async def give_back(self, layer) -> None:
        """The session is over: free the slot and the lease it holds, once."""
        self.give_back_slot()
        if not self._leased:
            return
        self._leased = False
        await _redis_call(layer, self.user_id, lambda client, key: client.zrem(key, self.conversation_id))

    def give_back_slot(self) -> None:
        if self._slot:
            self.slots.release(self.user_id)
            self._slot = False

    async def _lease(self, client, key: str, limit: int | None) -> int:
        return int(await client.eval(_TAKE, 1, key, self.conversation_id, limit or 2**31, LEASE_S))
