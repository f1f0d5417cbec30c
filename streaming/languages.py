"""Spoken languages: the codes Whisper knows, which model takes which, and the voice for each.

``STREAM_LANGUAGE`` is a Whisper language code (``en``, ``de``, ``es``, …) or ``auto`` (Whisper
detects it per utterance).  English-only models (``tiny.en``, ``base.en``) take only ``en``.
espeak-ng speaks most of these languages (:func:`espeak_voice_for`); Piper voices speak the
language of their own (:func:`streaming.tts.piper.piper_voice_for`).  This module imports nothing heavy:
the configuration checks with it at start-up.
"""

from __future__ import annotations

import re

from streaming.config_fields import ConfigError

AUTO = "auto"
ENGLISH = "en"

LANGUAGE_NAMES = {
    "af": "Afrikaans",
    "am": "Amharic",
    "ar": "Arabic",
    "as": "Assamese",
    "az": "Azerbaijani",
    "ba": "Bashkir",
    "be": "Belarusian",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "bo": "Tibetan",
    "br": "Breton",
    "bs": "Bosnian",
    "ca": "Catalan",
    "cs": "Czech",
    "cy": "Welsh",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fo": "Faroese",
    "fr": "French",
    "gl": "Galician",
    "gu": "Gujarati",
    "ha": "Hausa",
    "haw": "Hawaiian",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "ht": "Haitian Creole",
    "hu": "Hungarian",
    "hy": "Armenian",
    "id": "Indonesian",
    "is": "Icelandic",
    "it": "Italian",
    "ja": "Japanese",
    "jw": "Javanese",
    "ka": "Georgian",
    "kk": "Kazakh",
    "km": "Khmer",
    "kn": "Kannada",
    "ko": "Korean",
    "la": "Latin",
    "lb": "Luxembourgish",
    "ln": "Lingala",
    "lo": "Lao",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mg": "Malagasy",
    "mi": "Maori",
    "mk": "Macedonian",
    "ml": "Malayalam",
    "mn": "Mongolian",
    "mr": "Marathi",
    "ms": "Malay",
    "mt": "Maltese",
    "my": "Burmese",
    "ne": "Nepali",
    "nl": "Dutch",
    "nn": "Norwegian Nynorsk",
    "no": "Norwegian",
    "oc": "Occitan",
    "pa": "Punjabi",
    "pl": "Polish",
    "ps": "Pashto",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sa": "Sanskrit",
    "sd": "Sindhi",
    "si": "Sinhala",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sn": "Shona",
    "so": "Somali",
    "sq": "Albanian",
    "sr": "Serbian",
    "su": "Sundanese",
    "sv": "Swedish",
    "sw": "Swahili",
    "ta": "Tamil",
    "te": "Telugu",
    "tg": "Tajik",
    "th": "Thai",
    "tk": "Turkmen",
    "tl": "Tagalog",
    "tr": "Turkish",
    "tt": "Tatar",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "uz": "Uzbek",
    "vi": "Vietnamese",
    "yi": "Yiddish",
    "yo": "Yoruba",
    "zh": "Chinese",
    "yue": "Cantonese",
}
"""Whisper's languages (faster-whisper's ``tokenizer._LANGUAGE_CODES``; a test keeps them equal), by
code, with their English names for the language model's instructions."""
WHISPER_LANGUAGES = frozenset(LANGUAGE_NAMES)

ESPEAK_DEFAULT_VOICE = "en-us"
_ESPEAK_ALIASES = {"en": "en-us", "fr": "fr-fr", "zh": "cmn", "no": "nb", "nn": "nb"}
ESPEAK_MISSING = frozenset("bo br gl ha jw km ln lo mg mn oc ps sa sn so su tg tl yi yo".split())
"""Whisper languages the bundled espeak-ng (espeakng-loader) has no voice for (a test checks it)."""

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


def answer_in(language: str) -> str:
    """What the language model is told for a session in ``language``: nothing for English or ``auto``.

    Appended to the system prompt (:func:`system_prompt_for`), so a connected model answers in the
    language the user speaks, and the voice (:mod:`streaming.tts.voices`) speaks that language.
    """
    if language in (ENGLISH, AUTO) or language not in LANGUAGE_NAMES:
        return ""
    name = LANGUAGE_NAMES[language]
    return f"The user speaks {name}: always answer in {name}, whatever the instructions above say."


def system_prompt_for(system_prompt: str, language: str) -> str:
    """``system_prompt`` with the instruction to answer in ``language`` (:func:`answer_in`), if any."""
    instruction = answer_in(language)
    return f"{system_prompt}\n\n{instruction}" if instruction else system_prompt
