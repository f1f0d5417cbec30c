"""The wire format alone, client → server (streaming/web/protocol.py): exact text in, exact commands out.

Each refusal says what is wrong, and sizes and nesting are bounded before anything is parsed. The
same rules reach the client through the real router in test_consumer*.py and test_fuzz_consumer.py;
here each one is pinned down without a socket. Server → client is in test_protocol_encoding.py.
"""

from __future__ import annotations

import json

import pytest

from streaming.commands import CancelCommand, PlaybackReport, StartCommand, StopCommand, TextCommand
from streaming.errors import BadMessage
from streaming.web import protocol
from streaming.web.protocol import MAX_COMMAND_BYTES, parse_command, storable_text


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
        {"turn_id": "t", "seq": 0, "played_s": 10**400},  # an integer no float can hold
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
