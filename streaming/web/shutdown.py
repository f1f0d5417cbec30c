"""The shutdown notice: every session of every worker process hears that the server is going down.

Sessions are members of one channel-layer group, declared in Channels' ``groups``; a
worker that receives SIGTERM (daphne cancels its consumers) sends ``server.shutdown`` to
the group once, through Redis when several workers share it.  Joining and leaving never
fail a session: if the channel layer refuses them, only the notice from other workers is
lost.  (A channel layer that is down altogether still ends sessions: Channels' own receive
loop on the consumer's channel fails.)
"""

from __future__ import annotations

import logging
from typing import Any

from channels.db import aclose_old_connections
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

logger = logging.getLogger(__name__)

SHUTDOWN_GROUP = "voice-sessions"

_broadcast_sent = False


class ShutdownGroupConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer whose sessions are in the shutdown group, which can fail harmlessly.

    Channels' ``websocket_connect`` and ``websocket_disconnect`` join and leave ``groups``
    themselves and let a channel-layer error (Redis unreachable) escape: the connection fails before
    ``connect()``, or ``disconnect()`` is skipped and the session never ends as the client
    closed it.  These two hooks leave ``groups`` alone; the subclass calls :meth:`join_groups`
    once its session is open and :meth:`leave_groups` when it has ended, both of which only
    log a failure.
    """

    groups = [SHUTDOWN_GROUP]

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.connect()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        await self.disconnect(message["code"])
        await aclose_old_connections()
        raise StopConsumer()

    async def join_groups(self) -> None:
        for group in self.groups:
            try:
                await self.channel_layer.group_add(group, self.channel_name)
            except Exception:
                logger.warning("could not join the %s group", group, exc_info=True)

    async def leave_groups(self) -> None:
        for group in self.groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                logger.warning("could not leave the %s group", group, exc_info=True)


async def broadcast_shutdown(layer) -> None:
    """Tell every session in every worker process that the server is shutting down (once)."""
    global _broadcast_sent
    if _broadcast_sent or layer is None:
        return
    _broadcast_sent = True
    try:
        await layer.group_send(SHUTDOWN_GROUP, {"type": "server.shutdown"})
    except Exception:
        logger.warning("shutdown broadcast failed", exc_info=True)
