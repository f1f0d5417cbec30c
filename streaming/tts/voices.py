"""The voices a session may choose (``settings.voice``), and the shared engine that speaks each.

``auto`` (the default) is the server's own voice if it speaks the session's language, else a
Piper voice of that language if one is installed, else espeak-ng in it (the server's own voice
is chosen the same way for ``STREAM_LANGUAGE``). A session may also name an installed Piper
voice (it speaks its own language whatever the session's) or ``espeak-ng`` (it speaks the
session's).

Every voice is one engine shared by the sessions using it (:func:`get_shared_tts`), its
workers loaded once.  A process speaks with at most ``STREAM_TTS_MAX_VOICES`` of them, its
default included, so clients choosing voices cannot grow the server without bound.  At the
bound a voice no session or reply holds (:func:`~streaming.tts.hold_voice`) is unloaded for the
new one; when every one is held, a named voice is refused
(:class:`~streaming.tts.VoiceLimitReached`) and ``auto`` speaks with the server's own voice, so
the voices other sessions use never keep a session from its language.
"""

from __future__ import annotations

from pathlib import Path

from streaming.config import StreamConfig
from streaming.languages import AUTO, espeak_has_voice, espeak_voice_for
from streaming.tts import TTSEngine, VoiceLimitReached, get_shared_tts
from streaming.tts.espeak import BASIC_VOICE
from streaming.tts.piper import PiperTTS, installed_voices, piper_voice_for, voice_label

AUTO_VOICE = "auto"
ESPEAK_VOICE = "espeak-ng"


def voice_choices(config: StreamConfig) -> tuple[str, ...]:
    """What ``settings.voice`` accepts: ``auto``, each installed Piper voice and ``espeak-ng``."""
    if config.tts_max_voices == 1:
        return (AUTO_VOICE,)
    return (AUTO_VOICE, *installed_voices(), ESPEAK_VOICE)


def voice_labels(choices: tuple[str, ...]) -> dict[str, str]:
    """Each of ``choices`` as a person would name it: "Joe, English (United States)"."""
    names = {AUTO_VOICE: "Best for the language", ESPEAK_VOICE: BASIC_VOICE}
    voices = installed_voices()
    return {choice: names.get(choice) or voice_label(Path(f"{voices[choice]}.json")) for choice in choices}


def voice_config(voice: str, language: str, base: StreamConfig) -> StreamConfig:
    """``base`` with the engine and voice that speak ``voice`` for a session in ``language``."""
    spoken = base.language if language == AUTO else language
    espeak = base.replace(tts_engine="pyttsx3", tts_voice=espeak_voice_for(spoken))
    if voice == ESPEAK_VOICE:
        return espeak
    if voice != AUTO_VOICE:
        return base.replace(tts_engine="piper", tts_voice=voice)
    if base.tts_max_voices == 1:
        return base
    if base.tts_engine == "pyttsx3" and not base.tts_voice:  # the server's espeak-ng follows the language
        return base if spoken == base.language else espeak
    if speaks(base, spoken):
        return base
    piper = piper_voice_for(spoken)
    if piper is not None:
        return base.replace(tts_engine="piper", tts_voice=piper)
    return espeak if espeak_has_voice(spoken) else base


def speaks(config: StreamConfig, language: str) -> bool:
    """Whether ``config``'s voice speaks ``language``: a voice the administrator named always does;
    espeak-ng follows the language; a default Piper voice speaks its own."""
    if config.tts_voice or config.tts_engine == "pyttsx3":
        return True
    return piper_voice_for(language) == PiperTTS.voice_of(config)


def server_voice_config(config: StreamConfig) -> StreamConfig:
    """``config`` with the voice every session starts with: ``auto`` in ``STREAM_LANGUAGE``."""
    return voice_config(AUTO_VOICE, config.language, config)


def session_voice(voice: str, language: str, *, base: StreamConfig) -> TTSEngine:
    """The started, shared engine for a session's ``voice`` in ``language``.

    When that is a new voice, the process already speaks with ``STREAM_TTS_MAX_VOICES`` and
    every one of them is in use: ``auto`` gets the server's own voice (loaded at start), a named
    voice raises :class:`~streaming.tts.VoiceLimitReached`.
    """
    try:
        engine = get_shared_tts(voice_config(voice, language, base), at_most=base.tts_max_voices)
    except VoiceLimitReached:
        if voice != AUTO_VOICE:
            raise
        engine = get_shared_tts(server_voice_config(base))
    engine.start()
    return engine
