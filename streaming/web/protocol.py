"""The WebSocket wire format, in one place: client JSON → commands, events → server JSON, close codes.

docs/protocol.md documents every message; this module is its implementation.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import TYPE_CHECKING, Any

from streaming.audio import SAMPLE_RATE, SUPPORTED_RATES
from streaming.commands import (
    CancelCommand,
    Command,
    ConfigureCommand,
    PlaybackReport,
    StartCommand,
    StopCommand,
    TextCommand,
)
from streaming.config import StreamConfig
from streaming.engines import engine_names
from streaming.errors import BadMessage, BadSetting
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
from streaming.rate_limit import (
    COMMAND_BURST,
    COMMANDS_PER_S,
    CONFIGURE_BURST,
    CONFIGURES_PER_S,
    TYPED_TURN_BURST,
    TYPED_TURNS_PER_S,
)
from streaming.session_settings import SETTING_NAMES, SessionSettings, SettingLimits
from streaming.tts.voices import voice_labels

if TYPE_CHECKING:
    from streaming.session import Engines
    from streaming.tts import TTSEngine

CLOSE_SHUTDOWN = 1012  # Service Restart: reconnect shortly
CLOSE_TRY_LATER = 1013
CLOSE_POLICY = 4008
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_LIMIT = 4429
# How a session that ended for a reason closes its socket; every other reason closes with 4008.
_CLOSE_CODES = {
    "server_shutdown": CLOSE_SHUTDOWN,
    "unauthorized": CLOSE_UNAUTHORIZED,
    "deleted": CLOSE_NOT_FOUND,
}

SHUTDOWN_NOTICE = "The server is shutting down."
STORAGE_BACK_NOTICE = "Storage is back: everything said in this session is stored."

MAX_TEXT_CHARS = 4000
# Commands are small flat objects; a text turn of MAX_TEXT_CHARS escaped as \uXXXX is ~24 KB.
MAX_COMMAND_BYTES = 32 * 1024
MAX_COMMAND_DEPTH = 4
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_command(raw: str) -> Command:
    """Parse one client text message; raise :class:`BadMessage` saying what is wrong."""
    message = _strict_json(raw)
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
        if isinstance(text, str):
            text = storable_text(text).strip()
        if not isinstance(text, str) or not text:
            raise BadMessage("text.text must be a non-empty string.")
        if len(text) > MAX_TEXT_CHARS:
            raise BadMessage(f"text.text is limited to {MAX_TEXT_CHARS} characters.")
        return TextCommand(text)
    if kind == "playback":
        turn_id, seq, played = message.get("turn_id"), message.get("seq"), message.get("played_s", 0)
        if not isinstance(turn_id, str) or not _is_int(seq) or not _is_number(played) or played < 0:
            raise BadMessage("playback needs turn_id (string), seq (integer) and played_s (seconds ≥ 0).")
        return PlaybackReport(turn_id, seq, float(played))
    if kind == "configure":
        return parse_settings(message.get("settings"))
    if not isinstance(kind, str):
        raise BadMessage("Every message needs a string field 'type'.")
    raise BadMessage(
        f"Unknown message type {kind[:40]!r}: expected start, stop, cancel, text, playback or configure."
    )


_SETTING_TYPES: dict[str, tuple[Any, str]] = {
    "system_prompt": (lambda value: isinstance(value, str), "a string"),
    "silence_ms": (lambda value: _is_int(value), "an integer number of milliseconds"),
    "barge_in": (lambda value: isinstance(value, bool), "true or false"),
    "turn_detection": (lambda value: isinstance(value, str), "a string"),
    "language": (lambda value: isinstance(value, str), "a string"),
    "voice": (lambda value: isinstance(value, str), "a string"),
}


def parse_settings(settings: Any) -> ConfigureCommand:
    """A ``configure`` message's ``settings`` (also a stored conversation's): types checked, bounds not.

    An unknown field or a value of the wrong type raises :class:`BadSetting` naming it; a
    missing or ``null`` field keeps the session's value.  The session checks the bounds.
    """
    if not isinstance(settings, dict):
        raise BadMessage('configure needs a "settings" object, e.g. {"type": "configure", "settings": {}}.')
    accepted = ", ".join(SETTING_NAMES)
    for name, value in settings.items():
        if name not in _SETTING_TYPES:
            raise BadSetting(name[:40], f"Unknown setting {name[:40]!r}; accepted: {accepted}.")
        valid, kind = _SETTING_TYPES[name]
        if value is not None and not valid(value):
            raise BadSetting(name, f"settings.{name} must be {kind}.")
    prompt = settings.get("system_prompt")
    return ConfigureCommand(
        system_prompt=None if prompt is None else storable_text(prompt).strip(),
        silence_ms=settings.get("silence_ms"),
        barge_in=settings.get("barge_in"),
        turn_detection=settings.get("turn_detection"),
        language=settings.get("language"),
        voice=settings.get("voice"),
    )


def _strict_json(raw: str) -> Any:
    """``json.loads`` without what Python accepts beyond JSON: NaN/Infinity, unbounded size and depth."""
    if len(raw) > MAX_COMMAND_BYTES or len(raw.encode("utf-8", "surrogatepass")) > MAX_COMMAND_BYTES:
        raise BadMessage(f"JSON commands are limited to {MAX_COMMAND_BYTES} bytes.")
    too_deep = BadMessage(f"JSON commands nest at most {MAX_COMMAND_DEPTH} levels deep.")
    try:
        message = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise BadMessage(f"Text messages must be JSON objects ({_reason(exc)}).") from None
    if _depth(message) > MAX_COMMAND_DEPTH:
        raise too_deep
    return message


def _depth(value: Any) -> int:
    """How deeply ``value`` nests, counted without recursion (json.loads goes deeper than Python)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > MAX_COMMAND_DEPTH:
                return depth
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:20]} is out of range")
    return value


def _reason(exc: ValueError) -> str:
    return str(exc).split(":")[0][:80]


def storable_text(text: str) -> str:
    """``text`` as any database stores it: lone surrogates become U+FFFD, NUL characters are dropped.

    JSON lets a client send ``"\\ud800"``, which no UTF-8 database column accepts, and
    PostgreSQL refuses NUL in text; the rest of the message is kept as typed.
    """
    return _LONE_SURROGATE.sub("\ufffd", text).replace("\x00", "")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite JSON number; an integer too large for a float (400 digits) is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


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
            final = {
                "type": "final_transcript",
                "id": event.turn_id,
                "turn_id": event.turn_id,
                "text": event.text,
                "source": event.source,
                "audio_duration_s": round(event.audio_duration_s, 3),
            }
            if event.language is not None:
                final["language"] = event.language
            return final
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
            message = error_message(event.code, event.message, event.recoverable, event.turn_id)
            if event.count > 1:
                message["count"] = event.count
            return message
        case Info(message=message, turn_id=turn_id):
            return info_message(message, turn_id)
    raise TypeError(f"no wire format for {type(event).__name__}")


def session_message(
    conversation_id: str,
    config: StreamConfig,
    engines: Engines,
    *,
    resumed: bool,
    tts: TTSEngine | None = None,
    settings: SessionSettings | None = None,
) -> dict[str, Any]:
    """The first message of every session: what the server expects and which engines answer.

    ``tts`` and ``settings`` are the session's when a resumed conversation brought its own.
    """
    tts = tts or engines.tts
    return {
        "type": "session",
        "conversation_id": conversation_id,
        "resumed": resumed,
        "audio": {
            "encoding": "pcm_s16le",
            "channels": 1,
            "sample_rate": SAMPLE_RATE,
            "supported_sample_rates": list(SUPPORTED_RATES),
            "recommended_chunk_bytes": config.pcm_chunk_size,
        },
        "limits": {
            "max_message_bytes": config.max_message_bytes,
            "max_session_s": config.max_session_s,
            "idle_timeout_s": config.idle_timeout_s,
            "max_utterance_s": config.max_utterance_s,
            "vad_silence_ms": config.vad_silence_ms,
            "audio_max_speed": config.audio_max_speed,
            "audio_burst_s": config.audio_burst_s,
            "commands_per_s": COMMANDS_PER_S,
            "command_burst": COMMAND_BURST,
            "typed_turns_per_s": TYPED_TURNS_PER_S,
            "typed_turn_burst": TYPED_TURN_BURST,
            "configures_per_s": CONFIGURES_PER_S,
            "configure_burst": CONFIGURE_BURST,
        },
        "engines": {
            **engine_names(engines),
            "tts": tts.name,
            "llm_offline": engines.llm.offline,
            "voice": tts.label,
        },
        "barge_in": config.barge_in,
        "language": config.language,
        "turn_detection": turn_detection_settings(config),
        "settings": (settings or SessionSettings.of(config)).as_dict(),
        "settings_limits": settings_limits(SettingLimits.of(config)),
    }


def session_updated_message(
    settings: SessionSettings, config: StreamConfig, tts: TTSEngine
) -> dict[str, Any]:
    """The answer to ``configure``: the session's settings now in effect, from its next turn."""
    return {
        "type": "session_updated",
        "settings": settings.as_dict(),
        "turn_detection": turn_detection_settings(config),
        "engines": {"tts": tts.name, "voice": tts.label},
    }


def settings_limits(limits: SettingLimits) -> dict[str, Any]:
    """What ``configure`` accepts for each setting, as the server decides it."""
    return {
        "system_prompt": {"max_chars": limits.max_system_prompt_chars},
        "silence_ms": {"min": limits.min_silence_ms, "max": limits.max_silence_ms},
        "barge_in": {"choices": [True, False]},
        "turn_detection": {"choices": list(limits.turn_detection)},
        "language": {"choices": list(limits.languages)},
        "voice": {"choices": list(limits.voices), "labels": voice_labels(limits.voices)},
    }


def turn_detection_settings(config: StreamConfig) -> dict[str, Any]:
    """How a turn's end is decided: the fixed silence, or adaptive with the pauses it may choose."""
    if config.turn_detection != "adaptive":
        return {"mode": "fixed", "silence_ms": config.vad_silence_ms}
    return {
        "mode": "adaptive",
        "model": config.turn_model,
        "min_silence_ms": config.turn_min_silence_ms,
        "silence_ms": config.vad_silence_ms,
        "max_silence_ms": config.turn_max_silence_ms,
    }


def listening_message(sample_rate: int) -> dict[str, Any]:
    """The answer to ``start``: audio at ``sample_rate`` is now being listened to."""
    return {"type": "info", "message": "listening", "sample_rate": sample_rate}


def info_message(message: str, turn_id: str | None = None) -> dict[str, Any]:
    """A status message: :data:`SHUTDOWN_NOTICE`, :data:`STORAGE_BACK_NOTICE` or a session's ``Info``."""
    return _with_turn({"type": "info", "message": message}, turn_id)


def error_message(code: str, message: str, recoverable: bool, turn_id: str | None = None) -> dict[str, Any]:
    """An ``error``; :func:`encode_event` adds ``count`` to one that stands for several."""
    return _with_turn(
        {"type": "error", "code": code, "message": message, "recoverable": recoverable}, turn_id
    )


def _with_turn(message: dict[str, Any], turn_id: str | None) -> dict[str, Any]:
    if turn_id is not None:
        message["turn_id"] = turn_id
    return message


def close_code(reason: str) -> int:
    """The close code of a session that ended for ``reason`` (the end reason stored with it)."""
    return _CLOSE_CODES.get(reason, CLOSE_POLICY)
