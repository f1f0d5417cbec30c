"""The wire format alone, server → client (streaming/web/protocol.py): exact events in, exact messages out.

Every pipeline event has one message, its fields in the documented order (docs/protocol.md); so do
the session, info and error messages and the close codes. The same messages reach the client through
the real router in test_consumer*.py; here each one is pinned down without a socket. Client → server
is in test_protocol_parsing.py.
"""

from __future__ import annotations

import json
from typing import get_args

import pytest

from streaming.config import StreamConfig
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
from streaming.session import Engines
from streaming.web import protocol
from streaming.web.protocol import (
    close_code,
    encode_event,
    error_message,
    info_message,
    listening_message,
    session_message,
)
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS

ENCODED = [
    (SpeechStarted("t1"), {"type": "speech_started", "turn_id": "t1"}),
    (SpeechStopped("t1", "silence"), {"type": "speech_stopped", "turn_id": "t1", "reason": "silence"}),
    (PartialTranscript("t1", "hel"), {"type": "partial_transcript", "turn_id": "t1", "text": "hel"}),
    (
        FinalTranscript("t1", "hello there", 1.23456),
        {
            "type": "final_transcript",
            "id": "t1",
            "turn_id": "t1",
            "text": "hello there",
            "source": "voice",
            "audio_duration_s": 1.235,
        },
    ),
    (
        FinalTranscript("t2", "typed", 0.0, source="text"),
        {
            "type": "final_transcript",
            "id": "t2",
            "turn_id": "t2",
            "text": "typed",
            "source": "text",
            "audio_duration_s": 0.0,
        },
    ),
    (LLMToken("t1", "Hi"), {"type": "llm_token", "turn_id": "t1", "text": "Hi", "done": False}),
    (LLMToken("t1", "", done=True), {"type": "llm_token", "turn_id": "t1", "text": "", "done": True}),
    (
        TTSAudio("t1", 0, b"RIFF\x00\xff", "Hi there.", 0.61249),
        {
            "type": "tts_chunk",
            "turn_id": "t1",
            "seq": 0,
            "audio_b64": "UklGRgD/",
            "mime": "audio/wav",
            "text": "Hi there.",
            "duration_s": 0.612,
        },
    ),
    (TTSPhraseDone("t1", 3), {"type": "tts_phrase_done", "turn_id": "t1", "seq": 3}),
    (TTSComplete("t1"), {"type": "tts_complete", "turn_id": "t1"}),
    (Interrupted("t1", "barge_in"), {"type": "interrupted", "turn_id": "t1", "reason": "barge_in"}),
    (
        TurnFinished("t1", "interrupted", "hello", "Hi", generated_text="Hi there."),
        {"type": "turn_complete", "turn_id": "t1", "status": "interrupted", "assistant_text": "Hi"},
    ),
    (
        TurnMetrics("t1", {"asr_ms": 120.5, "partials": 2, "final_source": "speculative"}),
        {"type": "metrics", "turn_id": "t1", "asr_ms": 120.5, "partials": 2, "final_source": "speculative"},
    ),
    (
        ErrorEvent("NOT_STARTED", "Send start first.", True),
        {"type": "error", "code": "NOT_STARTED", "message": "Send start first.", "recoverable": True},
    ),
    (
        ErrorEvent("ASR_TIMEOUT", "Too slow.", True, turn_id="t1", count=3),
        {
            "type": "error",
            "code": "ASR_TIMEOUT",
            "message": "Too slow.",
            "recoverable": True,
            "turn_id": "t1",
            "count": 3,
        },
    ),
    (Info("No speech recognised."), {"type": "info", "message": "No speech recognised."}),
    (
        Info("No speech recognised.", "t1"),
        {"type": "info", "message": "No speech recognised.", "turn_id": "t1"},
    ),
]


@pytest.mark.parametrize(("event", "message"), ENCODED, ids=[type(event).__name__ for event, _ in ENCODED])
def test_encode_event(event, message: dict) -> None:
    encoded = encode_event(event)
    assert encoded == message
    assert list(encoded) == list(message)  # the documented field order
    assert json.loads(json.dumps(encoded)) == message


def test_every_event_type_is_encoded_above_and_anything_else_is_refused() -> None:
    assert {type(event) for event, _ in ENCODED} == set(get_args(Event))
    with pytest.raises(TypeError, match="no wire format for str"):
        encode_event("speech_started")  # type: ignore[arg-type]


def test_session_message() -> None:
    config = StreamConfig().replace(
        pcm_chunk_size=3200,
        max_message_bytes=262144,
        max_session_s=3600,
        idle_timeout_s=120,
        max_utterance_s=30,
        vad_silence_ms=500,
        audio_max_speed=3,
        audio_burst_s=15,
        barge_in=True,
    )
    engines = Engines(asr=ScriptedASR([]), llm=ScriptedLLM([]), tts=ScriptedTTS())
    assert session_message("c-1", config, engines, resumed=True) == {
        "type": "session",
        "conversation_id": "c-1",
        "resumed": True,
        "audio": {
            "encoding": "pcm_s16le",
            "channels": 1,
            "sample_rate": 16000,
            "supported_sample_rates": [8000, 16000, 22050, 24000, 32000, 44100, 48000],
            "recommended_chunk_bytes": 3200,
        },
        "limits": {
            "max_message_bytes": 262144,
            "max_session_s": 3600,
            "idle_timeout_s": 120,
            "max_utterance_s": 30,
            "vad_silence_ms": 500,
            "audio_max_speed": 3,
            "audio_burst_s": 15,
            "commands_per_s": 20,
            "command_burst": 50,
            "typed_turns_per_s": 0.5,
            "typed_turn_burst": 5,
            "configures_per_s": 1,
            "configure_burst": 5,
        },
        "engines": {
            "asr": "scripted-asr",
            "llm": "scripted-llm",
            "tts": "scripted-tts",
            "llm_offline": True,
            "voice": "Scripted voice",
        },
        "barge_in": True,
        "language": "en",
        "turn_detection": {"mode": "fixed", "silence_ms": 500},
        "settings": {
            "system_prompt": config.system_prompt,
            "silence_ms": 500,
            "barge_in": True,
            "turn_detection": "fixed",
            "language": "en",
            "voice": "auto",
        },
        "settings_limits": {
            "system_prompt": {"max_chars": 2000},
            "silence_ms": {"min": 300, "max": 1200},
            "barge_in": {"choices": [True, False]},
            "turn_detection": {"choices": ["fixed", "adaptive"]},
            "language": {"choices": ["en"]},
            "voice": {
                "choices": ["auto", "en_US-joe-medium", "espeak-ng"],
                "labels": {
                    "auto": "Best for the language",
                    "en_US-joe-medium": "Joe, English (United States)",
                    "espeak-ng": "Basic synthetic voice",
                },
            },
        },
    }
    assert session_message("c-2", config.replace(barge_in=False), engines, resumed=False)["resumed"] is False
    adaptive = config.replace(turn_detection="adaptive", turn_min_silence_ms=250, turn_max_silence_ms=1500)
    assert session_message("c-3", adaptive, engines, resumed=False)["turn_detection"] == {
        "mode": "adaptive",
        "model": "smart-turn",
        "min_silence_ms": 250,
        "silence_ms": 500,
        "max_silence_ms": 1500,
    }


def test_listening_info_and_error_messages() -> None:
    assert listening_message(48000) == {"type": "info", "message": "listening", "sample_rate": 48000}
    assert info_message(protocol.SHUTDOWN_NOTICE) == {
        "type": "info",
        "message": "The server is shutting down.",
    }
    assert info_message(protocol.STORAGE_BACK_NOTICE) == {
        "type": "info",
        "message": "Storage is back: everything said in this session is stored.",
    }
    assert error_message("SESSION_LIMIT", "Too many.", False) == {
        "type": "error",
        "code": "SESSION_LIMIT",
        "message": "Too many.",
        "recoverable": False,
    }
    assert error_message("TTS_FAILED", "One phrase.", True, "t1") == {
        "type": "error",
        "code": "TTS_FAILED",
        "message": "One phrase.",
        "recoverable": True,
        "turn_id": "t1",
    }


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("server_shutdown", 1012),
        ("unauthorized", 4401),
        ("idle_timeout", 4008),
        ("session_expired", 4008),
        ("client_closed", 4008),
        ("error", 4008),
    ],
)
def test_close_codes(reason: str, code: int) -> None:
    assert close_code(reason) == code


def test_refusal_close_codes_are_the_documented_numbers() -> None:
    assert (protocol.CLOSE_TRY_LATER, protocol.CLOSE_NOT_FOUND, protocol.CLOSE_LIMIT) == (1013, 4404, 4429)
    assert (protocol.CLOSE_SHUTDOWN, protocol.CLOSE_POLICY, protocol.CLOSE_UNAUTHORIZED) == (1012, 4008, 4401)
