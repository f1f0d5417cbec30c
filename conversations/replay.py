"""Replays journal segments that nobody is writing, in order, until every write is stored.

A segment needs replaying when its session ended with writes still failing, or when
its process died (the kernel released its lock).  One background thread per journal
does it: the ORM blocks, and at start-up no event loop runs yet.  The thread runs
only while there is work: it is woken at start-up, when a session hands its writes
over, and when a new session starts (a sibling worker may have died); it stops once a
pass leaves nothing waiting, and retries with a growing backoff while the database
still fails.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from django.db import DatabaseError, close_old_connections, connection

from . import services
from .journal import Journal, Segment, current_journal
from .models import EndReason
from .retry import Backoff
from .storage_state import storage_state
from .writes import Outcome, apply_write

logger = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    """What one pass did: writes stored and dropped, and the segments left for a later pass."""

    stored: int = 0
    dropped: int = 0
    waiting: int = 0
    error: str = ""


def replay_journal(journal: Journal, conversation_id: str | None = None) -> ReplayReport:
    """Replay every segment no one holds (``conversation_id``'s only, if given), oldest first.

    Blocking: call it from a thread, never the event loop.  A segment whose write
    fails for a transient reason is released as it is, for the next pass.
    """
    report = ReplayReport()
    try:
        for path in journal.segment_paths(conversation_id):
            try:
                segment = Segment.claim(path)
                if segment is not None:
                    _replay_segment(segment, report)
            except OSError as exc:  # the journal's disk, not the database: try again later
                logger.exception("could not replay a journal segment", extra={"segment": path.name})
                report.waiting += 1
                report.error = f"{type(exc).__name__}: {exc}"
    finally:
        close_old_connections()  # the calling thread keeps no connection open
    return report


def catch_up(opened: services.OpenedConversation) -> services.OpenedConversation:
    """``opened`` as it stands once what earlier sessions of its conversation left in the journal is
    stored, so the new session's memory and settings include it: the replayer may not have come
    round yet (it backs off while the database fails).  Called once the new session is attached,
    so detaching a dead session whose segment is replayed never closes the conversation under it.
    Blocking; best effort: what still fails stays for the replayer and the session's recorder."""
    key = str(opened.conversation.pk)
    try:
        report = replay_journal(current_journal(), key)
        if report.waiting:
            logger.info("a resumed conversation's earlier writes still wait", extra={"conversation_id": key})
        return services.reread(opened) if report.stored else opened
    except Exception:
        logger.exception(
            "could not catch up with a resumed conversation's journal", extra={"conversation_id": key}
        )
        return opened


def _replay_segment(segment: Segment, report: ReplayReport) -> None:
    try:
        for write in segment.pending():
            attempt = apply_write(write)
            if attempt.outcome is Outcome.FAILED:
                report.waiting += 1
                report.error = attempt.error
                return
            if attempt.outcome is Outcome.STORED:
                report.stored += 1
            else:
                report.dropped += 1
            segment.ack(write.seq, dropped=attempt.error)
        _detach_session(segment)
        segment.discard()
        logger.info("journal segment replayed", extra={"segment": segment.path.name})
    finally:
        segment.close()


def _detach_session(segment: Segment) -> None:
    """A replayed segment's session is over: it ended with writes waiting (its close was in the
    segment, so this changes nothing), or its process died, maybe mid-reply: its replies in
    progress are cancelled, and its conversation closed unless another session is attached.
    Best effort: a failure leaves the conversation open, to be closed by its next session's end."""
    if segment.session_key is None:
        return
    try:
        services.end_conversation(
            segment.conversation_id, reason=EndReason.SERVER_SHUTDOWN, session_key=segment.session_key
        )
    except DatabaseError as exc:
        logger.warning("could not detach the session of a replayed journal: %s", exc)


class Replayer:
    """The background thread replaying one journal; :meth:`wake` starts it if it is not running."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def wake(self) -> None:
        """Make a pass soon: now if the thread is idle or waiting, else right after the current one."""
        with self._lock:
            self._stopping = False
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="journal-replay", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """End the thread after its current pass (tests; a daemon thread needs no stopping at exit)."""
        with self._lock:
            thread, self._stopping = self._thread, True
            self._wake.set()
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        backoff = Backoff(first_s=0.5, cap_s=30.0)
        waiting = False
        try:
            while True:
                with self._lock:
                    # Settings now name another database (a test run switched to its test database):
                    # this journal's writes must not go there.
                    moved = current_journal().directory != self.journal.directory
                    if self._stopping or moved or not (waiting or self._wake.is_set()):
                        self._thread = None
                        return
                    self._wake.clear()
                report = replay_journal(self.journal)
                waiting = report.waiting > 0
                if waiting:
                    storage_state.failed(self, report.error)
                    self._wake.wait(backoff.next_delay())
                else:
                    storage_state.cleared(self)
                    backoff.reset()
        except Exception:
            logger.exception("journal replay stopped")
            with self._lock:
                self._thread = None
        finally:
            storage_state.cleared(self)
            connection.close()


_replayers: dict[Path, Replayer] = {}
_replayers_lock = threading.Lock()


def replayer_for(journal: Journal) -> Replayer:
    """The process's one replayer of ``journal``'s directory."""
    with _replayers_lock:
        replayer = _replayers.get(journal.directory)
        if replayer is None:
            replayer = _replayers[journal.directory] = Replayer(journal)
        return replayer
