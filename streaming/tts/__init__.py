"""Speech synthesis: the engine interface, and the engine every session shares.

A session needs :class:`TTSEngine` (one phrase in, one WAV out) and
:func:`synthesize_in_order` (:mod:`streaming.tts.ordered`: a streamed reply's phrases
in, their audio out in order).  Both engines run in worker processes
(:mod:`streaming.tts.workers`): Piper's neural voices (:mod:`streaming.tts.piper`)
and espeak-ng through pyttsx3 (:mod:`streaming.tts.espeak`);
:func:`get_shared_tts` picks one by ``STREAM_TTS_ENGINE``.
"""

from __future__ import annotations

import io
import threading
import wave
from typing import Protocol

from streaming.config import StreamConfig


class TTSEngine(Protocol):
    """Turns one phrase into a complete mono 16-bit WAV."""

    name: str
    """The engine and voice, for logs and the stored conversation: "piper:en_US-joe-medium"."""
    label: str
    """The voice as a person would name it: "Joe, English (United States)"."""

    async def synthesize(self, text: str, *, seq: int = 0) -> bytes:
        """WAV bytes for ``text``, the ``seq``-th phrase of its reply (an engine may serve earlier
        phrases first); raise :class:`TTSFailed` or :class:`TTSTimeout`."""
        ...

    async def aclose(self) -> None:
        """Release the engine's workers."""
        ...


def wav_duration(wav: bytes) -> float:
    """Seconds of audio in a WAV; raise ValueError if ``wav`` is not a WAV."""
    try:
        with wave.open(io.BytesIO(wav)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None


# Imported here, after the interface: the implementations import it.
from streaming.tts.espeak import Pyttsx3TTS  # noqa: E402
from streaming.tts.ordered import synthesize_in_order  # noqa: E402
from streaming.tts.piper import PiperTTS  # noqa: E402
from streaming.tts.workers import WorkerPoolTTS  # noqa: E402

_ENGINES: dict[str, type[WorkerPoolTTS]] = {"piper": PiperTTS, "pyttsx3": Pyttsx3TTS}
_shared: dict[tuple[object, ...], WorkerPoolTTS] = {}
_shared_lock = threading.Lock()


def voices_in_use() -> list[str]:
    """The voices this process speaks with (each engine's ``label``), in the order they came."""
    return [engine.label for engine in list(_shared.values())]


class VoiceLimitReached(Exception):
    """A new voice was asked for while the process already speaks with as many as it may."""


def get_shared_tts(config: StreamConfig, *, at_most: int | None = None) -> WorkerPoolTTS:
    """The process-wide engine for ``config``'s TTS settings, created on first use.

    Sessions share it and never close it: its workers end with the server process
    (each exits when its stdin closes).  With ``at_most``, a new engine is not created
    when the process already has that many: raises :class:`VoiceLimitReached`.
    """
    engine_class = _ENGINES[config.tts_engine]
    key = (
        config.tts_engine,
        engine_class.voice_of(config),
        config.tts_rate,
        config.tts_cpu_threads,
        config.tts_worker_processes,
        config.tts_timeout_s,
    )
    with _shared_lock:
        engine = _shared.get(key)
        if engine is None:
            if at_most is not None and len(_shared) >= at_most:
                raise VoiceLimitReached("; ".join(voices_in_use()))
            engine = _shared[key] = engine_class(config)
        return engine


__all__ = [
    "PiperTTS",
    "Pyttsx3TTS",
    "TTSEngine",
    "VoiceLimitReached",
    "get_shared_tts",
    "synthesize_in_order",
    "voices_in_use",
    "wav_duration",
]
