"""The WebSocket wire format, in one place: client JSON → commands, events → server JSON.

docs/protocol.md documents every message; this module is its implementation.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from streaming.errors import BadMessage
from streaming.events import (
    ErrorEvent,
    Event,
    FinalTranscript,
    Info,
    Interrupted,
    LLMToken,
    PartialTranscript,
    SpeechStarted,
    SpeechStopped,
    TTSAudio,
    TTSComplete,
    TTSPhraseDone,
    TurnFinished,
    TurnMetrics,
)

MAX_TEXT_CHARS = 4000


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


Command = StartCommand | StopCommand | CancelCommand | TextCommand | PlaybackReport


def parse_command(raw: str) -> Command:
    """Parse one client text message; raise :class:`BadMessage` saying what is wrong."""
    try:
        message = json.loads(raw)
    except ValueError:
        raise BadMessage("Text messages must be JSON objects.") from None
    if not isinstance(message, dict):
        raise BadMessage("Text messages must be JSON objects.")
    kind = message.get("type")
    if kind == "start":
        rate = message.get("sample_rate", 16000)
        if not _is_int(rate):
            raise BadMessage("start.sample_rate must be an integer number of Hz.")
        return StartCommand(rate)
    if kind == "stop":
        return StopCommand()
    if kind == "cancel":
        return CancelCommand()
    if kind == "text":
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadMessage("text.text must be a non-empty string.")
        if len(text) > MAX_TEXT_CHARS:
            raise BadMessage(f"text.text is limited to {MAX_TEXT_CHARS} characters.")
        return TextCommand(text.strip())
    if kind == "playback":
        turn_id, seq, played = message.get("turn_id"), message.get("seq"), message.get("played_s", 0)
        if not isinstance(turn_id, str) or not _is_int(seq) or not _is_number(played) or played < 0:
            raise BadMessage("playback needs turn_id (string), seq (integer) and played_s (seconds ≥ 0).")
        return PlaybackReport(turn_id, seq, float(played))
    if not isinstance(kind, str):
        raise BadMessage("Every message needs a string field 'type'.")
    raise BadMessage(f"Unknown message type {kind[:40]!r}: expected start, stop, cancel, text or playback.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def encode_event(event: Event) -> dict[str, Any]:
    """The JSON message for a pipeline event."""
    match event:
        case SpeechStarted(turn_id=turn_id):
            return {"type": "speech_started", "turn_id": turn_id}
        case SpeechStopped(turn_id=turn_id, reason=reason):
            return {"type": "speech_stopped", "turn_id": turn_id, "reason": reason}
        case PartialTranscript(turn_id=turn_id, text=text):
            return {"type": "partial_transcript", "turn_id": turn_id, "text": text}
        case FinalTranscript():
            return {
                "type": "final_transcript",
                "id": event.turn_id,
                "turn_id": event.turn_id,
                "text": event.text,
                "source": event.source,
                "audio_duration_s": round(event.audio_duration_s, 3),
            }
        case LLMToken(turn_id=turn_id, text=text, done=done):
            return {"type": "llm_token", "turn_id": turn_id, "text": text, "done": done}
        case TTSAudio():
            return {
                "type": "tts_chunk",
                "turn_id": event.turn_id,
                "seq": event.seq,
                "audio_b64": base64.b64encode(event.audio).decode("ascii"),
                "mime": event.mime,
                "text": event.text,
                "duration_s": round(event.duration_s, 3),
            }
        case TTSPhraseDone(turn_id=turn_id, seq=seq):
            return {"type": "tts_phrase_done", "turn_id": turn_id, "seq": seq}
        case TTSComplete(turn_id=turn_id):
            return {"type": "tts_complete", "turn_id": turn_id}
        case Interrupted(turn_id=turn_id, reason=reason):
            return {"type": "interrupted", "turn_id": turn_id, "reason": reason}
        case TurnFinished():
            return {
                "type": "turn_complete",
                "turn_id": event.turn_id,
                "status": event.status,
                "assistant_text": event.assistant_text,
            }
        case TurnMetrics(turn_id=turn_id, values=values):
            return {"type": "metrics", "turn_id": turn_id, **values}
        case ErrorEvent():
            return error_message(event.code, event.message, event.recoverable, event.turn_id)
        case Info(message=message, turn_id=turn_id):
            return _with_turn({"type": "info", "message": message}, turn_id)
    raise TypeError(f"no wire format for {type(event).__name__}")


def error_message(code: str, message: str, recoverable: bool, turn_id: str | None = None) -> dict[str, Any]:
    return _with_turn(
        {"type": "error", "code": code, "message": message, "recoverable": recoverable}, turn_id
    )


def _with_turn(message: dict[str, Any], turn_id: str | None) -> dict[str, Any]:
    if turn_id is not None:
        message["turn_id"] = turn_id
    return message
