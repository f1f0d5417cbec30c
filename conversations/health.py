"""Readiness of the parts a voice session needs: database, channel layer, ASR model.

``GET /health`` reports each component so a load balancer can wait for the
Whisper model to load and an operator can see which part is down; what went wrong (an error's
text names hosts, ports and paths) only to operators (``views/operators.py``).  The database
is checked both ways: ``SELECT 1`` for reads, and for writes what the recorders
and the journal met (a locked SQLite file still answers ``SELECT 1``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from channels.layers import get_channel_layer
from django.db import connection

from .journal import current_journal
from .storage_state import storage_state

CHANNEL_LAYER_TIMEOUT_S = 2.0
WRITE_DELAY_DEGRADED_S = 10.0
"""A write waiting this long in any worker's journal means writes are not getting through."""


@dataclass(frozen=True)
class Component:
    """One component's readiness; ``state`` is a short word, ``detail`` a sentence for people.

    ``facts`` are further fields of the component's report (the database's ``writes``).
    """

    ready: bool
    state: str
    detail: str = ""
    facts: dict[str, object] = field(default_factory=dict)

    def as_dict(self, *, detailed: bool = True) -> dict[str, object]:
        if not detailed:
            return {"ready": self.ready, "state": self.state}
        return {"ready": self.ready, "state": self.state, "detail": self.detail, **self.facts}


@dataclass(frozen=True)
class Health:
    """The overall verdict: ``ok`` when every component is ready, ``unavailable`` when the database
    cannot even be read, else ``degraded``.

    A worker whose channel layer is down still serves sessions in full (Redis carries only
    cross-worker notices, see ``streaming/web/redis_layer.py``): it stays ``serving``, so a load
    balancer keeps it while an operator sees ``degraded``.
    """

    database: Component
    channel_layer: Component
    asr_model: Component

    @property
    def ready(self) -> bool:
        return self.serving and self.channel_layer.ready

    @property
    def serving(self) -> bool:
        """Sessions can be opened, answered and stored here."""
        return self.database.ready and self.asr_model.ready

    @property
    def status(self) -> str:
        if self.ready:
            return "ok"
        return "unavailable" if self.database.state == "failed" else "degraded"

    def as_dict(self, *, detailed: bool = True) -> dict[str, object]:
        """Every component's readiness; without ``detailed``, only its state (for anyone)."""
        return {
            "status": self.status,
            "components": {
                "database": self.database.as_dict(detailed=detailed),
                "channel_layer": self.channel_layer.as_dict(detailed=detailed),
                "asr_model": self.asr_model.as_dict(detailed=detailed),
            },
        }


def check_database() -> Component:
    """Run ``SELECT 1`` on the default database, and add how its writes are going."""
    writes = write_report()
    facts = {"writes": writes}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver failure means "not ready", reported by type
        return Component(False, "failed", f"{type(exc).__name__}: {exc}", facts)
    if writes["state"] == "failing":
        why = writes["last_failure"] or f"a write has waited {writes['oldest_pending_s']} s"
        return Component(False, "degraded", f"{connection.vendor}: reads work, writes fail ({why})", facts)
    return Component(True, "ready", connection.vendor, facts)


def write_report() -> dict[str, object]:
    """Writes: failing now in this process, or waiting too long in this host's journal.

    ``pending`` counts the writes in the journal not stored yet (every worker's, live
    sessions' included), ``oldest_pending_s`` how long the oldest has waited.
    """
    status = storage_state.status()
    backlog = current_journal().backlog()
    now = time.time()
    waited = None if backlog.oldest_queued_at is None else round(now - backlog.oldest_queued_at, 1)
    failing = status.failing or (waited is not None and waited > WRITE_DELAY_DEGRADED_S)
    return {
        "state": "failing" if failing else "ok",
        "pending": backlog.writes,
        "oldest_pending_s": waited,
        "last_failure_at": _iso(status.last_failure_at),
        "last_failure": status.last_failure,
    }


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat()


async def check_channel_layer() -> Component:
    """Send a message to a fresh channel and read it back (in-memory or Redis alike)."""
    layer = get_channel_layer()
    if layer is None:
        return Component(False, "missing", "CHANNEL_LAYERS is not configured")
    nonce = secrets.token_hex(8)

    async def round_trip() -> dict:
        channel = await layer.new_channel("health.")
        await layer.send(channel, {"type": "health.ping", "nonce": nonce})
        return await layer.receive(channel)

    try:
        message = await asyncio.wait_for(round_trip(), CHANNEL_LAYER_TIMEOUT_S)
    except TimeoutError:
        return Component(False, "failed", f"no round trip within {CHANNEL_LAYER_TIMEOUT_S:g} s")
    except Exception as exc:  # a broken layer (e.g. Redis down) is reported, not raised
        return Component(False, "failed", f"{type(exc).__name__}: {exc}")
    if message.get("nonce") != nonce:
        return Component(False, "failed", "round trip returned another message")
    return Component(True, "ready", type(layer).__name__)


def asr_readiness() -> tuple[str, str]:
    """The Whisper model's (state, detail), state one of idle/loading/ready/failed."""
    from streaming.asr import model_readiness  # the engine module loads heavy libraries lazily

    return model_readiness()


def check_asr_model() -> Component:
    """The ASR model is ready only once it has loaded."""
    try:
        state, detail = asr_readiness()
    except ImportError as exc:
        return Component(False, "failed", f"ASR engine unavailable: {exc}")
    return Component(state == "ready", state, detail)
