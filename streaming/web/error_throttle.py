"""At most one error event per kind per second: a storm of bad frames becomes a count, not a flood.

A client that sends 2,000 audio frames before ``start`` would otherwise get 2,000 ``error``
events and the database 2,000 rows.  Events are keyed by (code, turn): the first of a kind
goes out at once; the rest within ``window_s`` are counted, and when the window closes the
latest of them goes out carrying ``count`` (how many errors it stands for).  Errors of
different turns never hide each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streaming.aio import TaskSet
from streaming.events import ErrorEvent

WINDOW_S = 1.0


@dataclass
class _Window:
    closes_at: float
    held: int = 0
    latest: ErrorEvent | None = None
    flush: asyncio.Task | None = None


class ErrorThrottle:
    """Passes error events to ``deliver`` at most once per key per window; see the module docstring."""

    def __init__(self, deliver: Callable[[ErrorEvent], Awaitable[None]], window_s: float = WINDOW_S) -> None:
        self._deliver = deliver
        self._window_s = window_s
        self._windows: dict[tuple[str, str | None], _Window] = {}
        self._tasks = TaskSet()

    async def submit(self, event: ErrorEvent) -> None:
        """Deliver ``event`` now, or count it for the summary at the end of its key's window."""
        key = (event.code, event.turn_id)
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or (now >= window.closes_at and window.flush is None):
            self._windows[key] = _Window(closes_at=now + self._window_s)
            await self._deliver(event)
            return
        window.held += 1
        window.latest = event
        if window.flush is None:
            window.flush = self._tasks.create(self._flush_later(key, window), name="error-summary")

    async def _flush_later(self, key: tuple[str, str | None], window: _Window) -> None:
        await asyncio.sleep(max(0.0, window.closes_at - time.monotonic()))
        await self._flush(key, window)

    async def _flush(self, key: tuple[str, str | None], window: _Window) -> None:
        latest, count = window.latest, window.held
        window.latest, window.held = None, 0
        # The summary opens the next window: a storm that goes on yields one event per window.
        self._windows[key] = _Window(closes_at=time.monotonic() + self._window_s)
        if latest is not None:
            note = f" ({count} like this in {self._window_s:g} s; this is the latest)" if count > 1 else ""
            await self._deliver(dataclasses.replace(latest, message=latest.message + note, count=count))

    async def aclose(self) -> None:
        """Deliver every pending summary now (the session is ending) and stop the timers."""
        pending = [(key, w) for key, w in self._windows.items() if w.latest is not None]
        await self._tasks.aclose()
        for key, window in pending:
            await self._flush(key, window)
        self._windows.clear()
