"""The consumer's two checked state machines, like Starlette's ``WebSocket`` (application and
client state): :class:`Phase` is the session's lifetime, :class:`SocketState` the socket's, which
the client may close while its session is still being finalized."""

from __future__ import annotations

import enum

from streaming.states import Transitions


class Phase(enum.Enum):
    """The session's lifetime: CONNECTING until it runs, OPEN, CLOSING while ``_close`` runs, CLOSED."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class SocketState(enum.Enum):
    """The WebSocket's: CONNECTED once accepted, DISCONNECTED once either side closed it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


PHASES = Transitions(
    "consumer phase",
    {
        Phase.CONNECTING: {Phase.OPEN, Phase.CLOSED},
        Phase.OPEN: {Phase.CLOSING},
        Phase.CLOSING: {Phase.CLOSED},
        Phase.CLOSED: set(),
    },
)
SOCKET = Transitions(
    "socket",
    {
        SocketState.CONNECTING: {SocketState.CONNECTED, SocketState.DISCONNECTED},
        SocketState.CONNECTED: {SocketState.DISCONNECTED},
        SocketState.DISCONNECTED: set(),
    },
)
