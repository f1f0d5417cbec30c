"""A durable local journal of conversation writes: one append-only file per session.

The client sees a final transcript right after the recorder queues its write
(the consumer, ``streaming/web/consumer.py``, hands each event to the recorder just
before sending it), possibly long before the database accepts it.  So the recorder
appends every write here first, before the client is told: a plain ``write(2)``,
which the kernel keeps even if the process is killed that instant; an ``fsync`` off
the event loop, before the database is tried, keeps it through a power cut too.  A
write is acknowledged once stored.  Whatever is not acknowledged when a session ends,
or when its process dies, is replayed in order by :mod:`conversations.replay`.

A segment is ``<root>/<database>/<conversation id>.<start time>-<session key>.jsonl`` holding one JSON
object per line: a write (see :class:`~conversations.writes.Write`) or an
acknowledgement ``{"ack": seq}`` (with ``"dropped"`` when the write was given up).
A session's writes are stored in order, so acknowledgements always cover a prefix,
and a segment with nothing pending is truncated to nothing: files stay as small as
the backlog.  Whoever appends to a segment holds an exclusive ``flock(2)`` on it: a
live session's file is never replayed, and two processes never replay the same file
at once.  The kernel drops the lock when a process dies, so a killed worker's
segments become replayable by its successor or a sibling.

Each database has a directory of its own, so a server started on another database
(a test, a benchmark) never replays, and never drops as "conversation not found",
writes meant for this one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from .writes import BadRecord, Write

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
_SESSION_KEY = re.compile(r"[0-9a-f]{32}")


class Segment:
    """One session's journal file, held with an exclusive lock while this object has it open."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.conversation_id = path.name.split(".", 1)[0]
        session = path.name.removesuffix(SUFFIX).rsplit("-", 1)[-1]
        self.session_key: str | None = session if _SESSION_KEY.fullmatch(session) else None
        """The session that wrote it (None in a segment named before sessions were)."""
        self._fd: int | None = fd
        self._lock = threading.Lock()  # appends come from the event loop, acks from a writer thread
        self._last_seq = 0
        self._synced = True
        self._new = False

    @classmethod
    def create(cls, directory: Path, conversation_id: str, session_key: str | None = None) -> Segment:
        """A new, empty, locked segment for session ``session_key`` (a fresh one if None) of
        ``conversation_id``."""
        directory.mkdir(parents=True, exist_ok=True)
        session = uuid.UUID(session_key).hex if session_key else uuid.uuid4().hex
        # Named so that a conversation's segments sort in the order their sessions began.
        name = f"{conversation_id}.{time.time_ns():020d}-{session}{SUFFIX}"
        # Locked under a name no replayer looks at, then renamed: nobody can claim it first.
        hidden = directory / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, directory / name)
        segment = cls(directory / name, fd)
        segment._new = True
        return segment

    @classmethod
    def claim(cls, path: Path) -> Segment | None:
        """Lock an existing segment to replay it; None if someone holds it or it is gone."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Replayed and removed by someone else between our open and our lock?
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return None
        segment = cls(path, fd)
        pending = segment.pending()
        segment._last_seq = pending[-1].seq if pending else 0
        return segment

    @property
    def closed(self) -> bool:
        return self._fd is None

    def append(self, write: Write) -> None:
        """Add ``write`` at the end; it survives this process being killed from now on."""
        with self._lock:
            self._write(write.to_line())
            self._last_seq = write.seq
            self._synced = False

    def ack(self, seq: int, dropped: str = "") -> None:
        """Every write up to ``seq`` is stored (or, with ``dropped``, the last one given up)."""
        with self._lock:
            if seq >= self._last_seq:
                os.ftruncate(self._open_fd(), 0)  # nothing left pending: start from empty
                return
            record: dict[str, object] = {"ack": seq}
            if dropped:
                record["dropped"] = dropped
            self._write(json.dumps(record).encode("ascii") + b"\n")

    def sync(self) -> None:
        """Flush what was appended to disk (call off the event loop: ``fsync`` can take a while)."""
        if self._synced:
            return
        self._synced = True
        os.fsync(self._open_fd())
        if self._new:  # the file's name must survive a power cut as well as its content
            self._new = False
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def pending(self) -> list[Write]:
        """The writes not yet acknowledged, in order."""
        with open(self.path, "rb") as handle:
            return pending_writes(handle.read(), self.path)

    def close(self) -> None:
        """Release the lock; what is pending stays for a replayer."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def discard(self) -> None:
        """Remove the file (everything in it is stored), then release the lock."""
        with self._lock:
            if self._fd is not None:
                self.path.unlink(missing_ok=True)
                os.close(self._fd)
                self._fd = None

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"journal segment {self.path.name} is closed")
        return self._fd

    def _write(self, data: bytes) -> None:
        fd = self._open_fd()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def pending_writes(data: bytes, path: Path | None = None) -> list[Write]:
    """The unacknowledged writes in a segment's bytes, in order.

    A last line cut short (the process died mid-write, or the disk filled) is
    ignored; so is any other line that is not a write this version can apply.
    """
    writes: dict[int, Write] = {}
    acked = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise BadRecord("not an object")
            if "ack" in record:
                acked = max(acked, int(record["ack"]))
                continue
            write = Write.from_record(record)
        except (ValueError, TypeError):
            if number < len(lines):  # the final line without newline is a torn write, not news
                logger.warning("skipping a bad journal line", extra={"path": str(path), "line": number})
            continue
        writes[write.seq] = write
    return [writes[seq] for seq in sorted(writes) if seq > acked]


@dataclass(frozen=True)
class Backlog:
    """Writes waiting in a journal directory: how many, in how many segments, since when."""

    writes: int
    segments: int
    oldest_queued_at: float | None


class Journal:
    """The journal directory of one database."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def create_segment(self, conversation_id: str, session_key: str | None = None) -> Segment:
        return Segment.create(self.directory, conversation_id, session_key)

    def segment_paths(self, conversation_id: str | None = None) -> list[Path]:
        """Segments present (``conversation_id``'s only, if given), each conversation's oldest first."""
        pattern = f"{conversation_id or '*'}.*{SUFFIX}"
        try:
            return sorted(self.directory.glob(pattern))
        except OSError:
            return []

    def backlog(self) -> Backlog:
        """Count the unacknowledged writes of every segment, live or waiting for replay."""
        writes = segments = 0
        oldest: float | None = None
        for path in self.segment_paths():
            try:
                pending = pending_writes(path.read_bytes(), path)
            except OSError:
                continue  # replayed and removed while we looked
            if pending:
                writes += len(pending)
                segments += 1
                first = min(write.queued_at for write in pending)
                oldest = first if oldest is None else min(oldest, first)
        return Backlog(writes, segments, oldest)


def current_journal() -> Journal:
    """The journal of the default database, under ``settings.CONVERSATION_JOURNAL_DIR``."""
    return Journal(Path(settings.CONVERSATION_JOURNAL_DIR) / database_key())


def database_key() -> str:
    """A directory name identifying the default database: vendor, name and a hash of where it is."""
    config = connection.settings_dict
    name = str(config.get("NAME") or "")
    if connection.vendor == "sqlite" and not name.startswith("file:") and name != ":memory:":
        name = str(Path(name).resolve())
    where = f"{connection.vendor}|{config.get('HOST') or ''}|{config.get('PORT') or ''}|{name}"
    digest = hashlib.sha256(where.encode()).hexdigest()[:12]
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).name or name).strip("-")[:40]
    return f"{connection.vendor}-{label}-{digest}"
