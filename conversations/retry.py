"""Retry short database transactions that failed for a transient reason.

SQLite answers "database is locked" when another writer holds the lock past the
busy timeout, and a PostgreSQL connection can drop between two sessions' writes.
Neither means the data is wrong, so a persistence call is worth repeating a few
times before the error reaches the voice session.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

RETRIES = 3
BACKOFF_S = 0.05

P = ParamSpec("P")
R = TypeVar("R")


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
            except (OperationalError, InterfaceError) as exc:
                if attempt >= RETRIES or connection.in_atomic_block:
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
