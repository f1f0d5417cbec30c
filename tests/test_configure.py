"""Per-session settings: the configure message's parsing, the server's bounds, all-or-nothing changes."""

from __future__ import annotations

import json

import pytest

from streaming.commands import ConfigureCommand
from streaming.config import StreamConfig
from streaming.errors import BadMessage, BadSetting
from streaming.events import TurnFinished
from streaming.session_settings import SessionSettings, SettingLimits
from streaming.web import protocol
from tests.support.fakes import ScriptedASR, ScriptedTTS
from tests.support.session_driver import feed, make_session, utterance

BASE = StreamConfig().replace(vad_silence_ms=700, barge_in=True)


def configure(**settings) -> str:
    return json.dumps({"type": "configure", "settings": settings})


def test_a_configure_message_parses_every_setting() -> None:
    command = protocol.parse_command(
        configure(system_prompt="  Be brief.  ", silence_ms=900, barge_in=False, turn_detection="adaptive")
    )
    assert command == ConfigureCommand("Be brief.", 900, False, "adaptive")


def test_missing_or_null_settings_keep_their_values() -> None:
    assert protocol.parse_command(configure()) == ConfigureCommand()
    assert protocol.parse_command(configure(silence_ms=None, barge_in=True)) == ConfigureCommand(
        barge_in=True
    )


def test_a_system_prompt_is_kept_as_a_database_can_store_it() -> None:
    command = protocol.parse_command(configure(system_prompt="Be\x00 brief \ud800"))
    assert command.system_prompt == "Be brief \ufffd"


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        ({"system_prompt": 5}, "system_prompt", "must be a string"),
        ({"silence_ms": "500"}, "silence_ms", "must be an integer number of milliseconds"),
        ({"silence_ms": 500.5}, "silence_ms", "must be an integer number of milliseconds"),
        ({"silence_ms": True}, "silence_ms", "must be an integer number of milliseconds"),
        ({"barge_in": "yes"}, "barge_in", "must be true or false"),
        ({"barge_in": 1}, "barge_in", "must be true or false"),
        ({"turn_detection": ["fixed"]}, "turn_detection", "must be a string"),
        ({"voice": 5}, "voice", "must be a string"),
        ({"language": 5}, "language", "must be a string"),
        ({"colour": "blue"}, "colour", "Unknown setting 'colour'"),
        ({"silence_ms": 500, "speed": 2}, "speed", "Unknown setting 'speed'"),
    ],
)
def test_a_wrong_type_or_unknown_field_is_refused_naming_it(settings, field, words) -> None:
    with pytest.raises(BadSetting) as caught:
        protocol.parse_command(json.dumps({"type": "configure", "settings": settings}))
    error = caught.value
    assert (error.code, error.recoverable, error.field) == ("BAD_SETTING", True, field)
    assert words in error.message and field in error.message


@pytest.mark.parametrize("raw", ['{"type": "configure"}', '{"type": "configure", "settings": [1]}'])
def test_configure_without_a_settings_object_is_a_bad_message(raw) -> None:
    with pytest.raises(BadMessage, match='configure needs a "settings" object'):
        protocol.parse_command(raw)


def test_the_bounds_come_from_the_process_configuration() -> None:
    limits = SettingLimits.of(BASE)
    assert (limits.min_silence_ms, limits.max_silence_ms) == (300, 1200)
    assert limits.max_system_prompt_chars == 2000 and limits.turn_detection == ("fixed", "adaptive")
    wide = BASE.replace(turn_min_silence_ms=150, turn_max_silence_ms=9000, max_system_prompt_chars=10)
    limits = SettingLimits.of(wide)
    # The VAD's own range (100..5000 ms) still holds.
    assert (limits.min_silence_ms, limits.max_silence_ms, limits.max_system_prompt_chars) == (150, 5000, 10)


@pytest.mark.parametrize(
    ("command", "field", "words"),
    [
        (
            ConfigureCommand(silence_ms=299),
            "silence_ms",
            "an integer from 300 to 1200 (milliseconds); got 299",
        ),
        (ConfigureCommand(silence_ms=1201), "silence_ms", "from 300 to 1200"),
        (
            ConfigureCommand(turn_detection="smart"),
            "turn_detection",
            "must be fixed or adaptive; got 'smart'",
        ),
        (ConfigureCommand(system_prompt="x" * 2001), "system_prompt", "limited to 2000 characters"),
        (ConfigureCommand(language="de"), "language", "model hears English only; got 'de'"),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_the_field_and_the_range(command, field, words) -> None:
    with pytest.raises(BadSetting) as caught:
        SessionSettings.of(BASE).updated(command, BASE)
    assert caught.value.field == field and words in caught.value.message


def test_a_huge_silence_is_refused_without_echoing_it() -> None:
    """The refusal is stored and sent: a 4,000-digit number must not come back in it."""
    with pytest.raises(BadSetting) as caught:
        SessionSettings.of(BASE).updated(ConfigureCommand(silence_ms=10**4000), BASE)
    assert caught.value.field == "silence_ms" and len(caught.value.message) < 200
    assert "from 300 to 1200" in caught.value.message


def test_adaptive_detection_needs_a_silence_within_its_pauses() -> None:
    slow = BASE.replace(vad_silence_ms=2000)  # allowed for the fixed rule by the environment
    with pytest.raises(BadSetting) as caught:
        SessionSettings.of(slow).updated(ConfigureCommand(turn_detection="adaptive"), slow)
    assert caught.value.field == "silence_ms" and "it is 2000" in caught.value.message
    both = ConfigureCommand(turn_detection="adaptive", silence_ms=1000)
    assert SessionSettings.of(slow).updated(both, slow).silence_ms == 1000


def test_an_empty_system_prompt_restores_the_servers() -> None:
    custom = SessionSettings.of(BASE).updated(ConfigureCommand(system_prompt="Be a pirate."), BASE)
    assert custom.system_prompt == "Be a pirate."
    assert custom.updated(ConfigureCommand(system_prompt=""), BASE).system_prompt == BASE.system_prompt


def test_settings_become_the_sessions_own_configuration() -> None:
    settings = SessionSettings("Be brief.", 900, False, "adaptive")
    config = settings.applied_to(BASE)
    assert (config.system_prompt, config.vad_silence_ms, config.barge_in) == ("Be brief.", 900, False)
    assert config.turn_detection == "adaptive" and SessionSettings.of(config) == settings
    assert (
        config.replace(
            turn_detection="fixed", vad_silence_ms=700, barge_in=True, system_prompt=BASE.system_prompt
        )
        == BASE
    )


def test_the_session_and_session_updated_events_carry_the_settings_and_their_bounds(scripted_engines) -> None:
    config = BASE.replace(barge_in=False)
    message = protocol.session_message("c1", config, scripted_engines, resumed=False)
    assert message["settings"] == {
        "system_prompt": config.system_prompt,
        "silence_ms": 700,
        "barge_in": False,
        "turn_detection": "fixed",
        "language": "en",
        "voice": "auto",
    }
    assert message["settings_limits"] == {
        "system_prompt": {"max_chars": 2000},
        "silence_ms": {"min": 300, "max": 1200},
        "barge_in": {"choices": [True, False]},
        "turn_detection": {"choices": ["fixed", "adaptive"]},
        "language": {"choices": ["en"]},  # tiny.en hears English only
        "voice": {
            "choices": ["auto", "en_US-joe-medium", "espeak-ng"],
            "labels": {
                "auto": "Best for the language",
                "en_US-joe-medium": "Joe, English (United States)",
                "espeak-ng": "Basic synthetic voice",
            },
        },
    }
    settings = SessionSettings("Be brief.", 900, True, "adaptive")
    updated = protocol.session_updated_message(settings, settings.applied_to(config), ScriptedTTS())
    assert updated == {
        "type": "session_updated",
        "settings": {
            "system_prompt": "Be brief.",
            "silence_ms": 900,
            "barge_in": True,
            "turn_detection": "adaptive",
            "language": "en",
            "voice": "auto",
        },
        "turn_detection": {
            "mode": "adaptive",
            "model": "smart-turn",
            "min_silence_ms": 300,
            "silence_ms": 900,
            "max_silence_ms": 1200,
        },
        "engines": {"tts": "scripted-tts", "voice": "Scripted voice"},
    }


async def test_a_refused_configure_changes_nothing_in_the_session() -> None:
    session, _ = make_session(tts=ScriptedTTS(seconds_per_char=0.001))
    before = (session.settings, session.config, session.memory.system_prompt)
    # silence_ms and barge_in are valid, turn_detection is not: none of them is applied.
    with pytest.raises(BadSetting):
        session.configure(ConfigureCommand(silence_ms=900, barge_in=True, turn_detection="smart"))
    assert (session.settings, session.config, session.memory.system_prompt) == before
    settings = session.configure(ConfigureCommand(silence_ms=900, system_prompt="Be brief."))
    assert settings == session.settings and session.config.vad_silence_ms == 900
    assert session.memory.system_prompt == "Be brief." and session.base_config.vad_silence_ms == 500
    await session.aclose()


def test_with_the_multilingual_model_a_session_may_choose_its_language() -> None:
    base = BASE.replace(model_whisper="base")
    assert protocol.parse_command(configure(language="de")) == ConfigureCommand(language="de")
    limits = SettingLimits.of(base)
    assert limits.languages[:3] == ("auto", "af", "am") and len(limits.languages) == 101
    german = SessionSettings.of(base).updated(ConfigureCommand(language="de"), base)
    assert german.language == "de" and german.applied_to(base).language == "de"
    assert german.updated(ConfigureCommand(silence_ms=900), base).language == "de"
    with pytest.raises(BadSetting) as caught:
        german.updated(ConfigureCommand(language="german"), base)
    assert caught.value.field == "language" and "auto or a Whisper language code" in caught.value.message


async def test_the_sessions_language_reaches_the_speech_engine_from_its_next_utterance() -> None:
    asr = ScriptedASR(["one", "two"])
    session, events = make_session(asr=asr, model_whisper="base", language="auto")
    session.start(16000)
    await feed(session, utterance())
    await events.wait_for(lambda e: isinstance(e, TurnFinished))
    assert set(asr.languages) == {"auto"}
    session.configure(ConfigureCommand(language="es"))
    heard = len(asr.languages)
    await feed(session, utterance("ps_cards_005"))
    await events.wait_for(lambda e: len(events.of(TurnFinished)) == 2)
    assert set(asr.languages[heard:]) == {"es"}
    await session.aclose()
