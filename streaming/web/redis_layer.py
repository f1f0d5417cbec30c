"""The Redis channel layer, made to outlive a Redis outage.

Every consumer of a worker listens on the channel layer (Channels' ``AsyncConsumer`` waits on the
client and on the layer at once), and channels-redis raises the connection error out of that wait:
a Redis restart used to end every voice session of every worker, cancelling the replies in
progress.  Redis carries only cross-worker notices (``streaming/web/notices.py``); a session does not
need it to hear, answer and store.  So :meth:`ResilientRedisChannelLayer.receive` waits out an
outage, retrying with backoff, and the session goes on; what Redis would have carried meanwhile
has its fallback where it is sent.
"""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

REDIS_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
"""What an unreachable, restarting or stalled Redis raises (``redis.exceptions`` are not OSErrors)."""

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    """channels-redis whose ``receive`` waits through an outage instead of raising."""

    _outage_logged = False

    async def receive(self, channel: str) -> dict:
        while True:
            try:
                return await super().receive(channel)
            except REDIS_FAILURES as exc:
                self._report_outage(exc)
                await self._until_reachable()

    async def _until_reachable(self) -> None:
        """Ping with backoff until Redis answers, so the recovery is logged when it happens (the
        wait on the channel would return only with the next message)."""
        delay = RETRY_FIRST_S
        while True:
            await asyncio.sleep(delay)
            try:
                await self.connection(0).ping()
            except REDIS_FAILURES:
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._report_recovery()
            return

    def _report_outage(self, exc: BaseException) -> None:
        """One warning per outage and worker, not one per session and retry."""
        if not self._outage_logged:
            ResilientRedisChannelLayer._outage_logged = True
            logger.warning("Redis unreachable; sessions go on and notices wait: %s", exc)

    def _report_recovery(self) -> None:
        if self._outage_logged:
            ResilientRedisChannelLayer._outage_logged = False
            logger.warning("Redis reachable again; cross-worker notices resume")
