"""Cross-worker notices to live sessions, over the Channels layer (Redis with several workers).

Each session joins its user's group; :func:`tell_sessions_access_changed` (connected to
``conversations.signals.access_changed`` by ``apps.py``) tells every session of that user, on
every worker, to re-check at once whether it may go on, so a revoked token, a deactivated account
or a deleted conversation ends them within a second instead of at the next periodic check.  The
notice is only a hint: the session reads the database before ending, and the periodic check
(``watchdog.py``) still runs, so an outage of Redis delays an end by at most 30 s and never loses one.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from streaming.web.redis_layer import REDIS_FAILURES

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"
"""The message type; the consumer's ``access_changed`` handles it."""

MEMBERSHIP_TIMEOUT_S = 2.0
"""How long joining or leaving the notices may hold up a session's start or end (Redis stalled)."""


def user_group(user_id: int) -> str:
    """The group every live session of ``user_id`` belongs to."""
    return f"user.{user_id}"


def tell_sessions_access_changed(sender, *, user_id: int, **kwargs) -> None:
    """Ask ``user_id``'s live sessions to re-check whether they may go on; never fails the caller."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": ACCESS_CHANGED})
    except REDIS_FAILURES as exc:
        logger.warning(
            "could not tell live sessions of an access change; their next check ends them: %s",
            exc,
            extra={"user_id": user_id},
        )


async def join(layer, user_id: int, channel_name: str) -> None:
    """Subscribe a session's channel to its user's notices."""
    await _membership(layer.group_add if layer else None, user_id, channel_name)


async def leave(layer, user_id: int, channel_name: str) -> None:
    """Unsubscribe a closing session's channel."""
    await _membership(layer.group_discard if layer else None, user_id, channel_name)


async def _membership(change, user_id: int, channel_name: str) -> None:
    """Without Redis the session goes on, and its periodic access check stands in."""
    if change is None:
        return
    try:
        await asyncio.wait_for(change(user_group(user_id), channel_name), MEMBERSHIP_TIMEOUT_S)
    except (*REDIS_FAILURES, TimeoutError) as exc:
        logger.warning("could not %s notices: %r", change.__name__, exc, extra={"user_id": user_id})
