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
_pinned: set[tuple[object, ...]] = set()
"""The server's own voices (asked for without ``at_most``): never unloaded."""
_shared_lock = threading.Lock()


def voices_in_use() -> list[str]:
    """The voices this process speaks with (each engine's ``label``), in the order they came."""
    return [engine.label for engine in list(_shared.values())]


class VoiceLimitReached(Exception):
    """A new voice was asked for while the process speaks with as many as it may, all in use."""


def get_shared_tts(config: StreamConfig, *, at_most: int | None = None) -> WorkerPoolTTS:
    """The process-wide engine for ``config``'s TTS settings, created on first use.

    Sessions share it and never close it: its workers end with the server process
    (each exits when its stdin closes).  With ``at_most``, a new engine is created
    when the process has fewer, or when one of them is held by no session or reply
    (:func:`hold_voice`) and has no phrase in progress: that one is unloaded to make
    room.  Otherwise raises :class:`VoiceLimitReached`.  An engine asked for without
    ``at_most`` (the server's own voice) is never unloaded.
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
                _unload_an_unused_voice()
            engine = _shared[key] = engine_class(config)
        if at_most is None:
            _pinned.add(key)
        return engine


def _unload_an_unused_voice() -> None:
    """Unload the oldest voice nobody speaks with; call with ``_shared_lock`` held."""
    for key, engine in _shared.items():
        if key not in _pinned and engine.holders == 0 and engine.in_progress == 0:
            del _shared[key]
            engine.unload()
            return
    raise VoiceLimitReached("; ".join(engine.label for engine in _shared.values()))


def hold_voice(engine: TTSEngine) -> None:
    """A session or reply speaks with ``engine`` from now on: it is not unloaded meanwhile."""
    if isinstance(engine, WorkerPoolTTS):
        with _shared_lock:
            engine.holders += 1


def release_voice(engine: TTSEngine) -> None:
    """The end of one :func:`hold_voice`."""
    if isinstance(engine, WorkerPoolTTS):
        with _shared_lock:
            engine.holders -= 1


__all__ = [
    "PiperTTS",
    "Pyttsx3TTS",
    "TTSEngine",
    "VoiceLimitReached",
    "get_shared_tts",
    "hold_voice",
    "release_voice",
    "synthesize_in_order",
    "voices_in_use",
    "wav_duration",
]
