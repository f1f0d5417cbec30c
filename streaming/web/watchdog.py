"""The limits every session lives under: idle timeout, maximum length, and its access (a revocable
credential, a conversation its owner may delete).

:class:`SessionWatchdog` sleeps until the nearest deadline rather than ticking, so each
limit is enforced on time: a revoked API token, a deactivated account or a deleted conversation
ends its session within :data:`ACCESS_CHECK_INTERVAL_S` of a check, which ``docs/protocol.md``
promises as 30 s even when the immediate notice (``notices.py``) does not arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from streaming.config import StreamConfig
from streaming.errors import IdleTimeout, SessionExpired, StreamError

# The docs promise 30 s; checking every 25 s leaves room for the query and the close.
ACCESS_CHECK_INTERVAL_S = 25.0

Expire = Callable[[str, StreamError], object]
AccessCheck = Callable[[], Awaitable["tuple[str, StreamError] | None"]]
"""None while the session may go on; else why it must end: the end reason and the error told."""


class SessionWatchdog:
    """Calls ``expire(reason, error)`` once, when the first limit is reached."""

    def __init__(
        self,
        config: StreamConfig,
        expire: Expire,
        *,
        check_access: AccessCheck | None = None,
        access_check_interval_s: float = ACCESS_CHECK_INTERVAL_S,
    ) -> None:
        self.idle_timeout_s = config.idle_timeout_s
        self.max_session_s = config.max_session_s
        self.started_at = self.last_activity = time.monotonic()
        self._expire = expire
        self._check_access = check_access
        self._check_interval_s = access_check_interval_s
        self._recheck = asyncio.Event()

    def touch(self) -> None:
        """The client sent something: the idle timeout starts again."""
        self.last_activity = time.monotonic()

    def recheck_access(self) -> None:
        """The access may have changed (``notices.py``): check it now, not at the next periodic check."""
        if self._check_access is not None:
            self._recheck.set()

    async def run(self) -> None:
        """Sleep until the nearest deadline, enforce it, repeat; returns after expiring the session."""
        next_check = self.started_at + self._check_interval_s
        while True:
            idle_at = self.last_activity + self.idle_timeout_s
            expires_at = self.started_at + self.max_session_s
            deadlines = [idle_at, expires_at]
            if self._check_access is not None:
                deadlines.append(next_check)
            try:
                await asyncio.wait_for(self._recheck.wait(), max(0.0, min(deadlines) - time.monotonic()))
            except TimeoutError:
                pass
            now = time.monotonic()
            if now >= self.last_activity + self.idle_timeout_s:
                self._expire("idle_timeout", IdleTimeout("No message for too long; session closed."))
                return
            if now >= expires_at:
                self._expire("session_expired", SessionExpired("Maximum session length reached."))
                return
            if self._check_access is not None and (now >= next_check or self._recheck.is_set()):
                self._recheck.clear()
                next_check = now + self._check_interval_s
                ended = await self._check_access()
                if ended is not None:
                    self._expire(*ended)
                    return
