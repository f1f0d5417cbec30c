"""Writes one session's events to the database, in order, without blocking audio, and loses none.

It lives in ``conversations/`` because it is persistence: it turns the pipeline's events
(core types from :mod:`streaming.events`, plain data) into journaled calls of
:mod:`conversations.services`, and knows nothing of Channels or the wire.  The Channels
edge (``streaming/web/consumer.py``) creates one per connection and feeds it.

The consumer hands every pipeline event to :meth:`ConversationRecorder.handle`
just before it sends the event to the client.  The writes an event implies are
appended to the session's journal segment there and then (:mod:`conversations.journal`),
so a final transcript the client sees survives even this process being killed (the
append is one ``write(2)`` to the page cache, about 10 µs on the event loop: see
``bench/journal_cost.py``); a background task then stores them one at a time, in order, on a thread of their
own.  A write that fails for a transient reason is retried with a growing backoff
for as long as the session lives, and the writes behind it wait (``finish_turn``
must not overtake ``record_turn``); one that can never succeed is logged and
dropped.  While writes fail the consumer hears it once through ``on_delayed``
(a ``STORAGE_DELAYED`` error), and again, with ``None``, once all is stored.
:meth:`~ConversationRecorder.aclose` stores what it can; the rest stays in the
journal for :mod:`conversations.replay`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections

from conversations import services
from streaming.errors import StorageDelayed, StreamError
from streaming.events import ErrorEvent, Event, FinalTranscript, TurnFinished, TurnMetrics

from .journal import Journal, Segment, current_journal
from .replay import replay_journal, replayer_for
from .retry import Backoff
from .storage_state import storage_state
from .writes import Attempt, Outcome, Write, apply_write

logger = logging.getLogger(__name__)

OnDelayed = Callable[[StreamError | None], Awaitable[None]]

WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conversation-writes")
"""Recorder writes run here, not on the ORM thread shared with reads: a write waiting out a
locked SQLite file (its busy timeout) must not hold up token checks or a new session's start."""

DELAYED_MESSAGE = (
    "The database is not accepting writes right now; what is said is kept and will be stored "
    "as soon as it is back."
)


class ConversationRecorder:
    """An ordered, journaled queue of persistence calls for one session of a conversation."""

    def __init__(
        self,
        conversation_id: str,
        *,
        session_key: str | None = None,
        on_delayed: OnDelayed | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.session_key = session_key
        self._on_delayed = on_delayed
        self._journal = journal
        self._segment: Segment | None = None
        self._journal_broken = False
        self._queue: deque[Write] = deque()
        self._queued = asyncio.Event()
        self._closing = asyncio.Event()
        self._seq = 0
        self._delayed = False
        self._accepting = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        journal = self._journal = self._journal or current_journal()
        try:
            self._segment = journal.create_segment(self.conversation_id, self.session_key)
        except OSError:
            logger.exception(
                "journal unavailable: this session's writes are not protected against a crash",
                extra={"conversation_id": self.conversation_id, "journal": str(journal.directory)},
            )
        self._accepting = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder")

    def record(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``fn(*args, **kwargs)`` (one of :data:`conversations.writes.CALLS`) after what is queued.

        It is in the journal when this returns: from then on it is stored even if
        this process dies.
        """
        self._seq += 1
        write = Write.of(self._seq, fn, args, kwargs, time.time())
        if not self._accepting:
            logger.error(
                "a write arrived after the recorder closed; not stored",
                extra={"conversation_id": self.conversation_id, "write": write.to_line().decode()},
            )
            return
        self._journal_append(write)
        self._queue.append(write)
        self._queued.set()

    def handle(self, event: Event) -> None:
        """Queue the writes an event implies; events that are not stored are ignored."""
        cid = self.conversation_id
        now = time.time()
        if isinstance(event, FinalTranscript):
            self.record(
                services.record_turn,
                cid,
                turn_id=event.turn_id,
                user_text=event.text,
                source=event.source,
                audio_duration_s=event.audio_duration_s if event.source == "voice" else None,
                at=now,
                session_key=self.session_key,
            )
        elif isinstance(event, TurnFinished):
            self.record(
                services.finish_turn,
                event.turn_id,
                status=event.status,
                assistant_text=event.assistant_text,
                generated_text=event.generated_text,
                at=now,
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
                event_id=str(uuid.uuid4()),
                at=now,
            )

    async def aclose(self) -> None:
        """Store what is queued; if the database still fails, leave the rest to the journal, then stop.

        Waits for at most one more attempt per write once the database is failing.
        """
        if self._task is None:
            return
        self._closing.set()
        self._queued.set()
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Writes of an earlier session of this conversation that were never stored go first.
            await loop.run_in_executor(WRITER, self._replay_earlier_sessions)
            while self._queue or not self._closing.is_set():
                if not self._queue:
                    self._queued.clear()
                    await self._queued.wait()
                    continue
                if not await self._store(self._queue[0]):
                    break  # closing while the database fails: the journal has the rest
                self._queue.popleft()
                if self._delayed and not self._queue:
                    self._delayed = False
                    await self._notify(None)
        finally:
            self._accepting = False
            storage_state.cleared(self)
            await loop.run_in_executor(WRITER, self._release_segment, len(self._queue))

    async def _store(self, write: Write) -> bool:
        """Store ``write``, retrying transient failures; False if the session closes first."""
        loop = asyncio.get_running_loop()
        backoff = Backoff()
        while True:
            attempt = await loop.run_in_executor(WRITER, self._attempt, write)
            if attempt.outcome is not Outcome.FAILED:
                if self._delayed:
                    storage_state.cleared(self)
                return True
            storage_state.failed(self, attempt.error)
            if not self._delayed:
                self._delayed = True
                logger.warning(
                    "conversation writes are failing; retrying",
                    extra={"conversation_id": self.conversation_id, "error": attempt.error},
                )
                await self._notify(StorageDelayed(DELAYED_MESSAGE))
            if self._closing.is_set():
                return False
            try:
                await asyncio.wait_for(self._closing.wait(), backoff.next_delay())
            except TimeoutError:
                pass

    def _attempt(self, write: Write) -> Attempt:
        """One try, on the writer thread: make the journal durable first, acknowledge after."""
        close_old_connections()
        try:
            self._journal_call("sync")
            attempt = apply_write(write)
            if attempt.outcome is not Outcome.FAILED:
                self._journal_call("ack", write.seq, attempt.error)  # a drop's reason, if dropped
            return attempt
        finally:
            close_old_connections()

    def _replay_earlier_sessions(self) -> None:
        assert self._journal is not None
        try:
            replay_journal(self._journal, self.conversation_id)
        except Exception:
            logger.exception(
                "could not replay earlier writes", extra={"conversation_id": self.conversation_id}
            )
        # A sibling worker that died may have left segments of other conversations too.
        replayer_for(self._journal).wake()

    def _release_segment(self, unstored: int) -> None:
        """Remove the segment if everything is stored, else hand it to the replayer."""
        segment = self._segment
        if segment is None:
            return
        try:
            if unstored:
                segment.sync()
                segment.close()
                logger.warning(
                    "session ended with writes not stored; the journal keeps them",
                    extra={"conversation_id": self.conversation_id, "writes": unstored},
                )
                assert self._journal is not None
                replayer_for(self._journal).wake()
            else:
                segment.discard()
        except OSError:
            logger.exception("journal segment could not be closed", extra={"segment": segment.path.name})
            segment.close()

    def _journal_append(self, write: Write) -> None:
        if self._segment is None or self._journal_broken:
            return
        try:
            self._segment.append(write)
        except OSError:
            # The segment stays locked: no replayer may race this session over the writes it holds.
            logger.exception(
                "journal write failed: this session's writes are no longer protected against a crash",
                extra={"conversation_id": self.conversation_id},
            )
            self._journal_broken = True

    def _journal_call(self, method: str, *args: Any) -> None:
        segment = self._segment
        if segment is None:
            return
        try:
            getattr(segment, method)(*args)
        except (OSError, ValueError):
            logger.exception("journal %s failed", method, extra={"conversation_id": self.conversation_id})

    async def _notify(self, error: StreamError | None) -> None:
        if self._on_delayed is None:
            return
        try:
            await self._on_delayed(error)
        except Exception:
            logger.exception("on_delayed callback failed", extra={"conversation_id": self.conversation_id})
