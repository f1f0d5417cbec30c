"""Readiness of the parts a voice session needs: database, channel layer, ASR model.

``GET /health`` reports each component so a load balancer can wait for the
Whisper model to load and an operator can see which part is down.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import asdict, dataclass

from channels.layers import get_channel_layer
from django.db import connection

CHANNEL_LAYER_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Component:
    """One component's readiness; ``state`` is a short word, ``detail`` a sentence for people."""

    ready: bool
    state: str
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Health:
    """The overall verdict: ``ok`` when every component is ready, ``unavailable`` without a database."""

    database: Component
    channel_layer: Component
    asr_model: Component

    @property
    def ready(self) -> bool:
        return self.database.ready and self.channel_layer.ready and self.asr_model.ready

    @property
    def status(self) -> str:
        if self.ready:
            return "ok"
        return "degraded" if self.database.ready else "unavailable"

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "components": {
                "database": self.database.as_dict(),
                "channel_layer": self.channel_layer.as_dict(),
                "asr_model": self.asr_model.as_dict(),
            },
        }


def check_database() -> Component:
    """Run ``SELECT 1`` on the default database."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver failure means "not ready", reported by type
        return Component(False, "failed", f"{type(exc).__name__}: {exc}")
    return Component(True, "ready", connection.vendor)


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
