"""Small asyncio helpers: every task has an owner, and cancellation is awaited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task | None, timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait until they have finished (or ``timeout`` passes).

    A timeout guards against libraries that swallow ``CancelledError``.
    """
    pending = [t for t in tasks if t is not None and not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            logger.warning("task did not stop after cancel", extra={"task": task.get_name()})


async def discard_result(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` if it still runs, and drop its result or error: nobody wants it any more."""
    await cancel_and_wait(task)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


class TaskSet:
    """Owns background tasks: keeps references, forgets finished ones, cancels the rest on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def create(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self, timeout: float = 5.0) -> None:
        await cancel_and_wait(*self._tasks, timeout=timeout)
