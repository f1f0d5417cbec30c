"""The shutdown notice: every session of every worker process hears that the server is going down.

Sessions join one channel-layer group; a worker that receives SIGTERM (daphne cancels its
consumers) sends ``server.shutdown`` to the group once, through Redis when several workers
share it.  Joining and leaving never fail a session: without the channel layer it still
works, and only the notice from other workers is lost.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

SHUTDOWN_GROUP = "voice-sessions"

_broadcast_sent = False


async def join(layer, channel_name: str) -> None:
    try:
        await layer.group_add(SHUTDOWN_GROUP, channel_name)
    except Exception:
        logger.warning("could not join the shutdown group", exc_info=True)


async def leave(layer, channel_name: str) -> None:
    try:
        await layer.group_discard(SHUTDOWN_GROUP, channel_name)
    except Exception:
        logger.warning("could not leave the shutdown group", exc_info=True)


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
