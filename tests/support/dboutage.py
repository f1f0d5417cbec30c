"""Take the test database away from writers, for real: another connection holds its write lock.

SQLite: a second connection runs ``BEGIN IMMEDIATE`` on the test database file, as
another process writing would; our writers wait out the busy timeout, then fail with
"database is locked".  PostgreSQL: a second connection locks the conversation tables
in ``EXCLUSIVE`` mode (reads still pass, as in SQLite's WAL mode); our writers give
up after ``lock_timeout``.  Both waits are shortened so a test takes seconds.
"""

from __future__ import annotations

import sqlite3

from django.db import connection

LOCK_WAIT_S = 0.3
TABLES = (
    "conversations_conversation",
    "conversations_turn",
    "conversations_turnmetrics",
    "conversations_errorevent",
)


def shorten_lock_wait(monkeypatch) -> None:
    """Writers give up on a held lock after :data:`LOCK_WAIT_S` (every connection opened from now on)."""
    options = connection.settings_dict["OPTIONS"]
    if connection.vendor == "sqlite":
        monkeypatch.setitem(options, "timeout", LOCK_WAIT_S)
    else:
        monkeypatch.setitem(options, "options", f"-c lock_timeout={int(LOCK_WAIT_S * 1000)}")


class WriteLock:
    """Hold the database's write lock from a connection of its own until :meth:`release`."""

    def __init__(self) -> None:
        self._sqlite: sqlite3.Connection | None = None
        self._postgres = None

    def acquire(self) -> None:
        config = connection.settings_dict
        if connection.vendor == "sqlite":
            # Taken and released from asyncio.to_thread calls, which may run on different threads.
            self._sqlite = sqlite3.connect(
                config["NAME"], timeout=30, isolation_level=None, check_same_thread=False
            )
            self._sqlite.execute("BEGIN IMMEDIATE")
            return
        import psycopg

        self._postgres = psycopg.connect(
            dbname=config["NAME"],
            user=config["USER"] or None,
            password=config["PASSWORD"] or None,
            host=config["HOST"] or None,
            port=config["PORT"] or None,
        )
        self._postgres.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")

    def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._postgres is not None:
            self._postgres.rollback()
            self._postgres.close()
            self._postgres = None
