"""Writes one session's events to the database, in order, without blocking audio.

The consumer hands every pipeline event to :meth:`ConversationRecorder.handle`;
a background task turns the ones worth keeping into ``services`` calls, each a
short transaction run off the event loop.  ``aclose()`` drains the queue, so a
turn finalized during disconnect or shutdown is still stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async

from conversations import services
from streaming.events import ErrorEvent, Event, FinalTranscript, TurnFinished, TurnMetrics

logger = logging.getLogger(__name__)


class ConversationRecorder:
    """An ordered queue of persistence calls for one conversation."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self._queue: asyncio.Queue[tuple[Callable[..., Any], tuple, dict] | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder")

    def record(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)``; it runs after everything queued before it."""
        self._queue.put_nowait((fn, args, kwargs))

    def handle(self, event: Event) -> None:
        """Queue the writes an event implies; events that are not stored are ignored."""
        cid = self.conversation_id
        if isinstance(event, FinalTranscript):
            self.record(
                services.record_turn,
                cid,
                turn_id=event.turn_id,
                user_text=event.text,
                source=event.source,
                audio_duration_s=event.audio_duration_s if event.source == "voice" else None,
            )
        elif isinstance(event, TurnFinished):
            self.record(
                services.finish_turn,
                event.turn_id,
                status=event.status,
                assistant_text=event.assistant_text,
                generated_text=event.generated_text,
            )
        elif isinstance(event, TurnMetrics):
            self.record(services.record_metrics, event.turn_id, event.values)
        elif isinstance(event, ErrorEvent):
            self.record(
                services.record_error,
                cid,
                code=event.code,
                message=event.message,
                recoverable=event.recoverable,
                turn_id=event.turn_id,
            )

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            if job is None:
                return
            fn, args, kwargs = job
            try:
                await database_sync_to_async(fn)(*args, **kwargs)
            except Exception:
                logger.exception(
                    "could not store conversation data",
                    extra={"conversation_id": self.conversation_id, "call": fn.__name__},
                )

    async def aclose(self) -> None:
        """Write everything queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await asyncio.shield(self._task)
