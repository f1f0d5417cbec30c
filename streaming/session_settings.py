"""Per-session settings: what a client may change for its own session, within the server's bounds.

The process configuration (:class:`~streaming.config.StreamConfig`) gives every session its
starting settings and the bounds a client may choose within; a ``configure`` command
(:class:`~streaming.commands.ConfigureCommand`) changes some of them for one session.  The
change is checked whole — one bad value changes nothing — and becomes that session's own
``StreamConfig`` (:meth:`SessionSettings.applied_to`): the shared engines are never touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from streaming.commands import ConfigureCommand
from streaming.config import StreamConfig
from streaming.errors import BadSetting
from streaming.languages import AUTO, ENGLISH, WHISPER_LANGUAGES, english_only
from streaming.tts.voices import AUTO_VOICE, voice_choices

SETTING_NAMES = ("system_prompt", "silence_ms", "barge_in", "turn_detection", "language", "voice")
"""What ``configure`` accepts."""
CHOSEN_KEY = "chosen"
"""In stored settings, the names of those the client chose (:meth:`SessionSettings.stored`)."""

_FIELDS = {f.name: f for f in dataclasses.fields(StreamConfig)}


@dataclass(frozen=True)
class SettingLimits:
    """What a client may choose, every bound taken from the process configuration.

    The silence is bounded by the pauses adaptive detection may choose
    (``STREAM_TURN_MIN_SILENCE_MS``..``STREAM_TURN_MAX_SILENCE_MS``, within the range
    ``STREAM_VAD_SILENCE_MS`` allows), so a session may switch mode without its silence
    falling outside the adaptive rule.
    """

    min_silence_ms: int
    max_silence_ms: int
    max_system_prompt_chars: int
    turn_detection: tuple[str, ...]
    languages: tuple[str, ...]
    """``en`` alone with an English-only model, else ``auto`` and every Whisper language code."""
    voices: tuple[str, ...]
    """``auto``, the installed Piper voices and ``espeak-ng`` (:mod:`streaming.tts.voices`)."""

    @classmethod
    def of(cls, config: StreamConfig) -> SettingLimits:
        vad = _FIELDS["vad_silence_ms"].metadata
        return cls(
            min_silence_ms=max(int(vad["low"]), config.turn_min_silence_ms),
            max_silence_ms=min(int(vad["high"]), config.turn_max_silence_ms),
            max_system_prompt_chars=config.max_system_prompt_chars,
            turn_detection=tuple(_FIELDS["turn_detection"].metadata["choices"]),
            languages=(ENGLISH,)
            if english_only(config.model_whisper)
            else (AUTO, *sorted(WHISPER_LANGUAGES)),
            voices=voice_choices(config),
        )


@dataclass(frozen=True)
class SessionSettings:
    """The settings a session uses now: ``settings`` in the ``session`` and ``session_updated`` events."""

    system_prompt: str
    silence_ms: int
    barge_in: bool
    turn_detection: str
    language: str = ENGLISH
    voice: str = AUTO_VOICE
    chosen: frozenset[str] = frozenset()
    """The settings the client chose; the others are the server's, and follow it when a stored
    conversation is resumed on a server configured otherwise (:meth:`stored`)."""

    @classmethod
    def of(cls, config: StreamConfig) -> SessionSettings:
        return cls(
            config.system_prompt,
            config.vad_silence_ms,
            config.barge_in,
            config.turn_detection,
            config.language,
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings in effect, as the ``session`` and ``session_updated`` events show them."""
        return {name: getattr(self, name) for name in SETTING_NAMES}

    def stored(self) -> dict[str, Any]:
        """What a conversation stores: the settings in effect, and which of them the client chose."""
        return {**self.as_dict(), CHOSEN_KEY: sorted(self.chosen)}

    def updated(self, command: ConfigureCommand, base: StreamConfig) -> SessionSettings:
        """These settings with ``command``'s changes, checked against ``base``'s bounds.

        Raises :class:`~streaming.errors.BadSetting` naming the first field out of bounds;
        nothing changes then.  An empty ``system_prompt`` restores ``base``'s.
        """
        limits = SettingLimits.of(base)
        prompt = command.system_prompt
        if prompt is not None and len(prompt) > limits.max_system_prompt_chars:
            raise BadSetting(
                "system_prompt",
                f"settings.system_prompt is limited to {limits.max_system_prompt_chars} characters "
                f'(this one has {len(prompt)}); send "" for the server\'s own prompt.',
            )
        silence_range = f"an integer from {limits.min_silence_ms} to {limits.max_silence_ms} (milliseconds)"
        silence = command.silence_ms
        if silence is not None and not limits.min_silence_ms <= silence <= limits.max_silence_ms:
            raise BadSetting(
                "silence_ms", f"settings.silence_ms must be {silence_range}; got {_shown(silence)}."
            )
        mode = command.turn_detection
        if mode is not None and mode not in limits.turn_detection:
            allowed = " or ".join(limits.turn_detection)
            raise BadSetting(
                "turn_detection", f"settings.turn_detection must be {allowed}; got {mode[:40]!r}."
            )
        language = command.language
        if language is not None and language not in limits.languages:
            allowed = (
                "en: this server's speech model hears English only"
                if limits.languages == (ENGLISH,)
                else "auto or a Whisper language code such as en, de, es, fr (settings_limits.language)"
            )
            raise BadSetting("language", f"settings.language must be {allowed}; got {language[:40]!r}.")
        voice = command.voice
        if voice is not None and voice not in limits.voices:
            allowed = ", ".join(limits.voices)
            raise BadSetting("voice", f"settings.voice must be one of {allowed}; got {voice[:40]!r}.")
        changed = dataclasses.replace(
            self,
            system_prompt=self.system_prompt if prompt is None else (prompt or base.system_prompt),
            silence_ms=self.silence_ms if silence is None else silence,
            barge_in=self.barge_in if command.barge_in is None else command.barge_in,
            turn_detection=self.turn_detection if mode is None else mode,
            language=self.language if language is None else language,
            voice=self.voice if voice is None else voice,
            chosen=self._chosen_after(command),
        )
        if changed.turn_detection == "adaptive" and not (
            limits.min_silence_ms <= changed.silence_ms <= limits.max_silence_ms
        ):
            raise BadSetting(
                "silence_ms",
                f"Adaptive turn detection needs settings.silence_ms to be {silence_range}; "
                f"it is {changed.silence_ms}.",
            )
        return changed

    def _chosen_after(self, command: ConfigureCommand) -> frozenset[str]:
        """The settings chosen once ``command`` applies: an empty prompt gives the server's back."""
        named = {name for name in SETTING_NAMES if getattr(command, name) is not None}
        chosen = self.chosen | named
        return chosen - {"system_prompt"} if command.system_prompt == "" else chosen

    def applied_to(self, base: StreamConfig) -> StreamConfig:
        """``base`` (the process configuration) with these settings: the session's own configuration."""
        return dataclasses.replace(
            base,
            system_prompt=self.system_prompt,
            vad_silence_ms=self.silence_ms,
            barge_in=self.barge_in,
            turn_detection=self.turn_detection,
            language=self.language,
        )


def _shown(number: int) -> str:
    """A refused number as an error may quote it: the refusal is sent and stored, however long the number."""
    digits = str(number)
    return digits if len(digits) <= 12 else f"a number of {len(digits.lstrip('-'))} digits"
