"""Which database failures pass, and how long to wait before trying again.

SQLite answers "database is locked" when another writer holds the lock past the
busy timeout, a moved or deleted file reads as "no such table", and a PostgreSQL
connection can drop or be refused.  None of these means the data is wrong: the
same write succeeds once the database is back, so it is *transient*.  An
integrity or encoding error, or a conversation deleted by its owner, will never
succeed: it is *permanent* and retrying it would only block the writes behind it.

Two policies use that distinction: :func:`retry_transient` repeats a short
transaction a few times in its thread (a dropped connection, a brief lock), and
:class:`Backoff` spaces out the recorder's and the journal's retries, which go on
for as long as it takes.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import DatabaseError, DataError, IntegrityError, NotSupportedError, connection

logger = logging.getLogger(__name__)

RETRIES = 3
BACKOFF_S = 0.05

P = ParamSpec("P")
R = TypeVar("R")


def is_transient(exc: BaseException) -> bool:
    """True when the same write may succeed later: a database error not about the data itself.

    Django wraps every driver error in a :class:`~django.db.DatabaseError`: operational
    (locked, refused, file missing, disk full), interface (connection closed) and the rest
    are kept for later; integrity and data errors are about the row and never pass.  Anything
    else (an encoding error, a ``ValueError`` from validation, a missing conversation) is
    permanent too.
    """
    return isinstance(exc, DatabaseError) and not isinstance(
        exc, IntegrityError | DataError | NotSupportedError
    )


def retry_transient(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` and repeat it up to :data:`RETRIES` times on a transient database error.

    Only an outermost transaction is retried: inside a caller's ``atomic`` block
    the failed transaction is already lost, so the error is raised at once.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except DatabaseError as exc:
                if not is_transient(exc) or attempt >= RETRIES or connection.in_atomic_block:
                    raise
                attempt += 1
                logger.warning(
                    "transient database error, retrying",
                    extra={"operation": func.__name__, "attempt": attempt, "error": str(exc)},
                )
                # A dropped connection is replaced on the next query only once it is closed.
                connection.close_if_unusable_or_obsolete()
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))

    return wrapper


class Backoff:
    """Exponentially growing waits with jitter, capped: 0.25 s, 0.5 s, 1 s, ... up to ``cap_s``.

    The jitter (up to a quarter of the wait) keeps sessions that failed together from
    retrying in lockstep against a database that is just coming back.
    """

    def __init__(self, first_s: float = 0.25, cap_s: float = 5.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._attempts = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.first_s * 2**self._attempts)
        self._attempts += 1
        return delay * (1 + random.random() / 4)

    def reset(self) -> None:
        self._attempts = 0
