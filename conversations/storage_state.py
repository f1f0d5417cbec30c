"""Whether this process's conversation writes are getting through: read by ``/health``.

``SELECT 1`` succeeds on a database that refuses writes (a SQLite file another
process holds write-locked, a table locked on PostgreSQL), so the recorders and
the journal replayer report what their writes meet here, and the health check
reads it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class WriteStatus:
    """A snapshot: how many writers wait on a failing write, and the last failure seen."""

    delayed_writers: int
    last_failure_at: float | None
    last_failure: str

    @property
    def failing(self) -> bool:
        return self.delayed_writers > 0


class StorageState:
    """Thread-safe tally of writers (recorders, the replayer) whose current write is failing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delayed: set[object] = set()
        self._last_failure_at: float | None = None
        self._last_failure = ""

    def failed(self, writer: object, error: str) -> None:
        """``writer``'s write failed for a transient reason (``error``); it will retry."""
        with self._lock:
            self._delayed.add(writer)
            self._last_failure_at = time.time()
            self._last_failure = error

    def cleared(self, writer: object) -> None:
        """``writer``'s writes get through again, or it stopped (what it kept is in the journal)."""
        with self._lock:
            self._delayed.discard(writer)

    def status(self) -> WriteStatus:
        with self._lock:
            return WriteStatus(len(self._delayed), self._last_failure_at, self._last_failure)


storage_state = StorageState()
