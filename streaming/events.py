"""Typed events the pipeline emits for one session.

A :class:`~streaming.session.VoiceSession` reports everything it does as one of
these dataclasses through an :data:`Emit` coroutine; ``web/protocol.py`` turns them
into WebSocket JSON and the consumer stores the ones that matter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streaming.errors import StreamError


@dataclass(frozen=True)
class SpeechStarted:
    """The VAD detected the start of an utterance; ``turn_id`` names the turn it begins."""

    turn_id: str


@dataclass(frozen=True)
class SpeechStopped:
    """The utterance ended (silence timeout, ``stop``, maximum length or disconnect)."""

    turn_id: str
    reason: str


@dataclass(frozen=True)
class PartialTranscript:
    turn_id: str
    text: str


@dataclass(frozen=True)
class FinalTranscript:
    """The utterance's transcript; its ``turn_id`` is the ``id`` clients correlate on."""

    turn_id: str
    text: str
    audio_duration_s: float
    source: str = "voice"
    language: str | None = None
    """The language Whisper transcribed in (detected with ``STREAM_LANGUAGE=auto``); None when typed."""


@dataclass(frozen=True)
class LLMToken:
    turn_id: str
    text: str
    done: bool = False


@dataclass(frozen=True)
class TTSAudio:
    """One synthesized phrase, WAV bytes, numbered in playback order from 0."""

    turn_id: str
    seq: int
    audio: bytes
    text: str
    duration_s: float
    mime: str = "audio/wav"


@dataclass(frozen=True)
class TTSPhraseDone:
    turn_id: str
    seq: int


@dataclass(frozen=True)
class TTSComplete:
    turn_id: str


@dataclass(frozen=True)
class Interrupted:
    """A reply was stopped before it finished: by barge-in or ``cancel``.

    What the user heard of it is the ``assistant_text`` of its :class:`TurnFinished`.
    """

    turn_id: str
    reason: str


@dataclass(frozen=True)
class TurnFinished:
    """A turn reached its end state.

    ``assistant_text`` is what is committed to history (for a reply cut short,
    what the user heard); ``generated_text`` is everything the LLM produced.
    """

    turn_id: str
    status: str
    user_text: str
    assistant_text: str
    generated_text: str = ""


@dataclass(frozen=True)
class TurnMetrics:
    turn_id: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorEvent:
    """An error the client is told about; ``count`` is how many like errors it stands for.

    ``message`` is what the client is told and what is stored; ``detail`` is the engine's own
    account (it may name a library, a model or a setting), for the server log only.
    """

    code: str
    message: str
    recoverable: bool
    turn_id: str | None = None
    count: int = 1
    detail: str = ""

    @classmethod
    def from_error(cls, exc: StreamError, turn_id: str | None = None) -> ErrorEvent:
        """The event telling the client about ``exc``, in the words meant for a user."""
        told = exc.told
        return cls(
            exc.code, told, exc.recoverable, turn_id, detail="" if told == exc.message else exc.message
        )


@dataclass(frozen=True)
class Info:
    message: str
    turn_id: str | None = None


Event = (
    SpeechStarted
    | SpeechStopped
    | PartialTranscript
    | FinalTranscript
    | LLMToken
    | TTSAudio
    | TTSPhraseDone
    | TTSComplete
    | Interrupted
    | TurnFinished
    | TurnMetrics
    | ErrorEvent
    | Info
)

Emit = Callable[[Event], Awaitable[None]]
"""How the pipeline hands an event to its caller (the consumer sends and stores it)."""
