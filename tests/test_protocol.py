"""The wire format alone (streaming/web/protocol.py): exact messages in, exact messages out.

The same rules reach the client through the real router in test_consumer*.py and
test_fuzz_consumer.py; here each one is pinned down without a socket.
"""

from __future__ import annotations

import json
from typing import get_args

import pytest

from streaming.commands import CancelCommand, PlaybackReport, StartCommand, StopCommand, TextCommand
from streaming.config import StreamConfig
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
from streaming.session import Engines
from streaming.web import protocol
from streaming.web.protocol import (
    MAX_COMMAND_BYTES,
    close_code,
    encode_event,
    error_message,
    info_message,
    listening_message,
    parse_command,
    session_message,
    storable_text,
)
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS

# -- client → server ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "command"),
    [
        ('{"type": "start", "sample_rate": 48000}', StartCommand(48000)),
        ('{"type": "start"}', StartCommand(16000)),
        ('{"type": "start", "sample_rate": 12345}', StartCommand(12345)),  # the session judges the rate
        ('{"type": "stop"}', StopCommand()),
        ('{"type": "cancel", "extra": [1, {"a": null}]}', CancelCommand()),
        ('{"type": "text", "text": "  hello  "}', TextCommand("hello")),
        ('{"type": "text", "text": "caf\\ud800 au lait\\u0000"}', TextCommand("caf\ufffd au lait")),
        ('{"type": "text", "text": "' + "é" * protocol.MAX_TEXT_CHARS + '"}', TextCommand("é" * 4000)),
        (
            '{"type": "playback", "turn_id": "t1", "seq": 2, "played_s": 0.8}',
            PlaybackReport("t1", 2, 0.8),
        ),
        ('{"type": "playback", "turn_id": "t1", "seq": 0}', PlaybackReport("t1", 0, 0.0)),
        ('{"type": "playback", "turn_id": "t1", "seq": 0, "played_s": 3}', PlaybackReport("t1", 0, 3.0)),
    ],
)
def test_valid_commands(raw: str, command) -> None:
    assert parse_command(raw) == command


def test_played_seconds_are_a_float() -> None:
    report = parse_command('{"type": "playback", "turn_id": "t1", "seq": 0, "played_s": 3}')
    assert type(report.played_s) is float


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "Text messages must be JSON objects (Expecting value)."),
        ("", "Text messages must be JSON objects (Expecting value)."),
        ('["start"]', "Text messages must be JSON objects."),
        ("42", "Text messages must be JSON objects."),
        ('"start"', "Text messages must be JSON objects."),
        (
            '{"type": "start", "sample_rate": NaN}',
            "Text messages must be JSON objects (NaN is not valid JSON).",
        ),
        (
            '{"type": "playback", "turn_id": "x", "seq": 0, "played_s": Infinity}',
            "Text messages must be JSON objects (Infinity is not valid JSON).",
        ),
        (
            '{"type": "start", "sample_rate": -Infinity}',
            "Text messages must be JSON objects (-Infinity is not valid JSON).",
        ),
        (
            '{"type": "playback", "turn_id": "x", "seq": 0, "played_s": 1e999}',
            "Text messages must be JSON objects (1e999 is out of range).",
        ),
        ('{"type": "stop"', "Text messages must be JSON objects (Expecting ',' delimiter)."),
        ("{}", "Every message needs a string field 'type'."),
        ('{"type": 7}', "Every message needs a string field 'type'."),
        ('{"type": null}', "Every message needs a string field 'type'."),
        (
            '{"type": "hello"}',
            "Unknown message type 'hello': expected start, stop, cancel, text, playback or configure.",
        ),
        (
            '{"type": "' + "x" * 100 + '"}',
            f"Unknown message type {'x' * 40!r}: expected start, stop, cancel, text, playback or configure.",
        ),
        ('{"type": "start", "sample_rate": "16000"}', "start.sample_rate must be an integer number of Hz."),
        ('{"type": "start", "sample_rate": 16000.0}', "start.sample_rate must be an integer number of Hz."),
        ('{"type": "start", "sample_rate": true}', "start.sample_rate must be an integer number of Hz."),
        ('{"type": "start", "sample_rate": null}', "start.sample_rate must be an integer number of Hz."),
        ('{"type": "text"}', "text.text must be a non-empty string."),
        ('{"type": "text", "text": "   "}', "text.text must be a non-empty string."),
        ('{"type": "text", "text": "\\u0000"}', "text.text must be a non-empty string."),
        ('{"type": "text", "text": 5}', "text.text must be a non-empty string."),
        (
            '{"type": "text", "text": "' + "a" * (protocol.MAX_TEXT_CHARS + 1) + '"}',
            "text.text is limited to 4000 characters.",
        ),
    ],
)
def test_each_rejection_says_what_is_wrong(raw: str, message: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_command(raw)
    assert caught.value.message == message
    assert (caught.value.code, caught.value.recoverable) == ("BAD_MESSAGE", True)


PLAYBACK_FIELDS = "playback needs turn_id (string), seq (integer) and played_s (seconds ≥ 0)."


@pytest.mark.parametrize(
    "fields",
    [
        {"seq": 0, "played_s": 1},
        {"turn_id": 5, "seq": 0},
        {"turn_id": "t", "seq": "0"},
        {"turn_id": "t", "seq": 1.0},
        {"turn_id": "t", "seq": False},
        {"turn_id": "t", "seq": 0, "played_s": -0.1},
        {"turn_id": "t", "seq": 0, "played_s": "1"},
        {"turn_id": "t", "seq": 0, "played_s": True},
        {"turn_id": "t", "seq": 0, "played_s": None},
    ],
)
def test_a_playback_report_needs_every_field_typed(fields: dict) -> None:
    with pytest.raises(BadMessage, match="playback needs") as caught:
        parse_command(json.dumps({"type": "playback", **fields}))
    assert caught.value.message == PLAYBACK_FIELDS


def test_a_huge_message_is_refused_for_its_size_before_it_is_parsed() -> None:
    with pytest.raises(BadMessage) as caught:
        parse_command("[" * 100_000)
    assert caught.value.message == "JSON commands are limited to 32768 bytes."


def test_size_is_counted_in_utf8_bytes() -> None:
    too_long = '{"type": "text", "text": "hi"}' + " " * (MAX_COMMAND_BYTES - 29)
    assert len(too_long) == MAX_COMMAND_BYTES + 1
    wide = '{"type": "text", "text": "' + "é" * (MAX_COMMAND_BYTES // 2) + '"}'  # 2 bytes each
    assert len(wide) < MAX_COMMAND_BYTES
    for raw in (too_long, wide):
        with pytest.raises(BadMessage) as caught:
            parse_command(raw)
        assert caught.value.message == "JSON commands are limited to 32768 bytes."
    fits = '{"type": "stop"}' + " " * (MAX_COMMAND_BYTES - 16)
    assert parse_command(fits) == StopCommand()


def test_a_lone_surrogate_counts_as_three_bytes_and_is_never_an_encoding_error() -> None:
    raw = '{"type": "stop", "x": "' + "\ud800" * (MAX_COMMAND_BYTES // 3) + '"}'
    with pytest.raises(BadMessage, match="limited to 32768 bytes"):
        parse_command(raw)
    assert parse_command('{"type": "text", "text": "a\ud800b"}') == TextCommand("a\ufffdb")


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "stop", "x": [[[{}]]]}',
        '{"type": "stop", "x": ' + "[" * 5 + "]" * 5 + "}",
        "[" * 990 + "]" * 990,
        "[" * 30_000,
        '{"type": "text", "text": "hi", "x": ' + "[" * 5_000 + "]" * 5_000 + "}",
    ],
    ids=["5-levels", "6-levels", "nested-990", "nested-30k-unclosed", "deep-5000"],
)
def test_nesting_beyond_four_levels_is_refused(raw: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_command(raw)
    assert caught.value.message == "JSON commands nest at most 4 levels deep."


def test_four_levels_are_allowed() -> None:
    assert parse_command('{"type": "stop", "x": [[{"y": 1}]]}') == StopCommand()


def test_a_huge_integer_is_bad_json_not_a_crash() -> None:
    with pytest.raises(BadMessage, match="^Text messages must be JSON objects"):
        parse_command('{"type": "start", "sample_rate": ' + "9" * 5_000 + "}")


def test_storable_text_repairs_surrogates_and_drops_nul() -> None:
    assert storable_text("a\ud800b\udfffc\x00d") == "a\ufffdb\ufffdc" + "d"
    assert storable_text("plain ☕ text 😀") == "plain ☕ text 😀"


# -- server → client ---------------------------------------------------------------------------


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
        },
        "settings_limits": {
            "system_prompt": {"max_chars": 2000},
            "silence_ms": {"min": 300, "max": 1200},
            "barge_in": {"choices": [True, False]},
            "turn_detection": {"choices": ["fixed", "adaptive"]},
            "language": {"choices": ["en"]},
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
