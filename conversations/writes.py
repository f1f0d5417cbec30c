"""The conversation writes that may have to wait: named, serialisable, applied one attempt at a time.

A :class:`Write` is a call of one of the :mod:`conversations.services` functions in
:data:`CALLS`, by name, with JSON arguments, so the recorder can put it in the
journal and another process can replay it later.  Names map to functions through
this table only: a journal file never decides which code runs.
"""

from __future__ import annotations

import enum
import inspect
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from . import services
from .retry import is_transient

logger = logging.getLogger(__name__)

CALLS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn
    for fn in (
        services.record_turn,
        services.finish_turn,
        services.record_metrics,
        services.record_heard_text,
        services.record_settings,
        services.record_error,
        services.end_conversation,
    )
}
"""Every write the recorder may queue and the journal may replay; each is idempotent."""


class BadRecord(ValueError):
    """A journal line that is not a write this version knows how to apply."""


@dataclass(frozen=True)
class Write:
    """One queued call: ``CALLS[call](*args, **kwargs)``, number ``seq`` in its session's order."""

    seq: int
    call: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queued_at: float = 0.0

    @classmethod
    def of(cls, seq: int, fn: Callable[..., Any], args: tuple, kwargs: dict, queued_at: float) -> Write:
        """The write calling ``fn``; only the functions in :data:`CALLS` can be journaled.

        The arguments are taken as JSON gives them back (a UUID becomes its text), so a write
        stored now and the same write replayed from the journal are exactly the same call.
        """
        if CALLS.get(fn.__name__) is not fn:
            raise TypeError(f"{fn.__name__} is not a journaled write")
        plain = json.loads(json.dumps([list(args), kwargs], default=_as_json))
        return cls(seq, fn.__name__, tuple(plain[0]), plain[1], queued_at)

    def to_line(self) -> bytes:
        """One JSON line; ASCII-escaped, so even text that cannot be stored (a lone surrogate) fits."""
        record = {"seq": self.seq, "call": self.call, "args": list(self.args), "kwargs": self.kwargs}
        record["queued_at"] = self.queued_at
        return json.dumps(record, separators=(",", ":")).encode("ascii") + b"\n"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Write:
        """The write a decoded journal line describes; :class:`BadRecord` if it is not one."""
        call, args, kwargs = record.get("call"), record.get("args"), record.get("kwargs")
        seq, queued_at = record.get("seq"), record.get("queued_at", 0.0)
        if call not in CALLS:
            raise BadRecord(f"unknown write {call!r}")
        if not isinstance(seq, int) or not isinstance(args, list) or not isinstance(kwargs, dict):
            raise BadRecord(f"malformed {call} record")
        if not isinstance(queued_at, int | float):
            raise BadRecord(f"malformed {call} record")
        return cls(seq, call, tuple(args), kwargs, float(queued_at))


def _as_json(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be journaled")


class Outcome(enum.Enum):
    STORED = "stored"
    FAILED = "failed"
    """A transient failure: the same write is tried again later."""
    DROPPED = "dropped"
    """A permanent failure: logged with the whole write and given up."""


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    error: str = ""


def apply_write(write: Write) -> Attempt:
    """Run ``write`` once, in the calling thread (never the event loop).

    One attempt only (the service's own quick retries are skipped): the recorder and
    the replayer wait between attempts themselves, without holding a thread.
    """
    fn = inspect.unwrap(CALLS[write.call])
    try:
        fn(*write.args, **write.kwargs)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if is_transient(exc):
            # The next attempt opens a fresh connection: to the file put back, or a restarted server.
            connection.close()
            return Attempt(Outcome.FAILED, error)
        logger.error(
            "dropping a conversation write that can never be stored",
            extra={"call": write.call, "error": error, "write": write.to_line().decode().strip()},
        )
        return Attempt(Outcome.DROPPED, error)
    return Attempt(Outcome.STORED)
