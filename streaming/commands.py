"""What a client asks of its session, as typed values: the edge parses the wire into these.

The session queues them too (start, stop, cancel arrive in order with the audio), so the
pipeline and the wire share one definition of each command.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartCommand:
    sample_rate: int


@dataclass(frozen=True)
class StopCommand:
    pass


@dataclass(frozen=True)
class CancelCommand:
    pass


@dataclass(frozen=True)
class TextCommand:
    text: str


@dataclass(frozen=True)
class PlaybackReport:
    """The client stopped playing reply ``turn_id`` ``played_s`` seconds into chunk ``seq``."""

    turn_id: str
    seq: int
    played_s: float


@dataclass(frozen=True)
class ConfigureCommand:
    """Change some of the session's settings from its next turn; ``None`` keeps a setting as it is.

    The wire format has checked the types; the bounds are the session's to check
    (:mod:`streaming.session_settings`).  ``system_prompt=""`` restores the server's prompt.
    """

    system_prompt: str | None = None
    silence_ms: int | None = None
    barge_in: bool | None = None
    turn_detection: str | None = None
    language: str | None = None
    voice: str | None = None


Command = StartCommand | StopCommand | CancelCommand | TextCommand | PlaybackReport | ConfigureCommand
