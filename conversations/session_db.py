"""Database calls of WebSocket sessions that must not wait on Channels' shared ORM thread.

Channels runs every ``database_sync_to_async`` call on one thread per process, and waits
for that thread before it dispatches *every* incoming message (``aclose_old_connections``),
audio frames included.  A write stuck behind a locked SQLite file waits out the busy
timeout there, so one connection opened during an outage stalled the audio of every
session in the worker.  Session-opening reads and writes, token checks and token
bookkeeping run on this small pool instead; the recorder has its own writer thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

R = TypeVar("R")

SESSION_DB = ThreadPoolExecutor(max_workers=2, thread_name_prefix="session-db")


async def run_off_shared_thread(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """``fn(*args, **kwargs)`` on :data:`SESSION_DB`, on a connection of its own."""
    return await sync_to_async(_on_fresh_connection, thread_sensitive=False, executor=SESSION_DB)(
        fn, *args, **kwargs
    )


def _on_fresh_connection(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    # Calls are rare (a connect, a token check every 25 s): a new connection each time costs
    # little and always carries the current settings, and none is left open in an idle thread.
    connections.close_all()
    try:
        return fn(*args, **kwargs)
    finally:
        connections.close_all()
