"""Whisper through faster-whisper: the model loader, the decoder, and one shared engine per process.

:class:`WhisperASR` loads the model (its files found by :mod:`streaming.asr.models`) in a
background thread and decodes on a :class:`~streaming.asr.scheduler.ASRScheduler` it owns
(finals first and in turn per session).  The encoder sees each utterance plus a bounded padding
(:mod:`streaming.asr.window`), and :mod:`streaming.asr.filters` drops what Whisper
invents on silence.  :func:`get_shared_asr` keeps one engine per setting, so every
session of the process shares one model; :func:`start_loading` begins loading it at
start-up and :func:`model_readiness` reports its state for ``/health``.  ctranslate2 and
faster-whisper errors become :class:`ModelLoadFailed` or :class:`ASRFailed` here.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Hashable
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from streaming.asr import Transcription
from streaming.asr.filters import frame_rms, hallucinated, invented_on_silence, is_silent
from streaming.asr.models import LOCAL_MODEL_HINT, ModelSpec, cache_dir
from streaming.asr.scheduler import ASRScheduler, ASRStats
from streaming.asr.window import set_window_padding
from streaming.audio import SAMPLE_RATE, pcm_to_float
from streaming.errors import ASRFailed, ModelLoadFailed
from streaming.languages import AUTO, ENGLISH

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from streaming.config import StreamConfig

logger = logging.getLogger(__name__)

DEFAULT_PARTIAL_SHARE = 0.5

_FINAL_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class LoadState(Enum):
    IDLE = "idle"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class WhisperASR:
    """faster-whisper behind a finals-first, per-session fair scheduler on an executor it owns."""

    def __init__(self, config: StreamConfig, *, partial_share: float | None = DEFAULT_PARTIAL_SHARE) -> None:
        """``partial_share`` is the fraction of worker time partials may use (None: no budget)."""
        self.name = f"whisper:{config.model_whisper}"
        self.model_whisper = config.model_whisper
        self.model_cache_dir = config.model_cache_dir
        self.language = config.language
        """The Whisper language code spoken, or ``auto`` (detected per call)."""
        self.cpu_threads = config.asr_cpu_threads
        self.workers = config.asr_workers
        self.beam_size = config.asr_beam_size
        self.window_padding_s = config.asr_window_padding_s
        self._scheduler = ASRScheduler(
            workers=config.asr_workers,
            timeout_s=config.asr_timeout_s,
            max_wait_s=config.asr_max_wait_s,
            partial_share=partial_share,
        )
        self._lock = threading.Lock()
        self._state = LoadState.IDLE
        self._detail = "not loaded yet"
        self._loaded: concurrent.futures.Future[WhisperModel] = concurrent.futures.Future()

    @property
    def ready(self) -> bool:
        return self._state is LoadState.READY

    def stats(self) -> ASRStats:
        return self._scheduler.stats()

    def readiness(self) -> tuple[str, str]:
        """(state, detail): state is idle, loading, ready or failed; detail says which model or why."""
        return self._state.value, self._detail

    def start_loading(self) -> concurrent.futures.Future[WhisperModel]:
        """Load the model in a background thread unless already started; returns the load future."""
        with self._lock:
            if self._state is LoadState.IDLE:
                self._state = LoadState.LOADING
                self._detail = f"loading {self.model_whisper}"
                self._loaded.set_running_or_notify_cancel()
                # Not a daemon: killing it mid-load at interpreter exit aborts the process (ctranslate2).
                threading.Thread(target=self._load, name="asr-load").start()
        return self._loaded

    def _load(self) -> None:
        began = time.perf_counter()
        try:
            model, spec = self._open_model()
        except ModelLoadFailed as exc:
            self._fail(exc)
            return
        except Exception as exc:
            self._fail(
                ModelLoadFailed(
                    f"could not load Whisper model {self.model_whisper!r}: {exc}; {LOCAL_MODEL_HINT}"
                )
            )
            return
        with self._lock:
            self._state = LoadState.READY
            self._detail = f"{spec.source} ({spec.kind}, {spec.compute_type}, {self.cpu_threads} threads)"
        logger.info(
            "Whisper model ready", extra={"model": self._detail, "load_s": time.perf_counter() - began}
        )
        self._loaded.set_result(model)

    def _open_model(self) -> tuple[WhisperModel, ModelSpec]:
        from faster_whisper import WhisperModel

        set_window_padding(self.window_padding_s)

        spec = ModelSpec.parse(self.model_whisper)
        model = WhisperModel(
            spec.resolve(cache_dir(self.model_cache_dir)),
            device="cpu",
            compute_type=spec.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.workers,
            local_files_only=True,
        )
        if self.language != ENGLISH and not model.model.is_multilingual:
            raise ModelLoadFailed(
                f"Whisper model {self.model_whisper!r} knows only English, and STREAM_LANGUAGE is "
                f"{self.language}; {LOCAL_MODEL_HINT}"
            )
        # The first call pays one-off allocation costs; pay them before the first user does.
        warm_up = self._options(final=False, language=self.language)
        list(model.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), **warm_up)[0])
        return model, spec

    def _fail(self, error: ModelLoadFailed) -> None:
        with self._lock:
            self._state = LoadState.FAILED
            self._detail = error.message
        logger.error("Whisper model failed to load: %s", error.message)
        self._loaded.set_exception(error)

    async def transcribe_final(
        self, audio: np.ndarray, *, owner: Hashable, language: str | None = None
    ) -> Transcription:
        """Transcribe a finished utterance: ahead of all partials, in turn with other owners' finals.

        ``language`` (a Whisper code or ``auto``) overrides the engine's ``STREAM_LANGUAGE``.
        """
        await self._wait_model()
        call = functools.partial(self._transcribe, audio, final=True, language=language or self.language)
        return await self._scheduler.final(owner, call)

    async def transcribe_partial(
        self, audio: np.ndarray, *, owner: Hashable, language: str | None = None, spare: int = 0
    ) -> Transcription | None:
        """Transcribe the utterance so far if there is capacity right now (and ``spare`` workers
        beside); None means skipped.

        While the model is still loading there is no capacity: the partial is skipped, not held.
        Partials are never queued, so ``owner`` does not change when one runs.
        """
        if self.start_loading().running():
            self._scheduler.skip_partial()
            return None
        await self._wait_model()
        call = functools.partial(self._transcribe, audio, final=False, language=language or self.language)
        return await self._scheduler.partial(call, spare=spare)

    async def _wait_model(self) -> None:
        """Wait for the model, starting the load if nobody has (cancelling the wait leaves the load alone)."""
        try:
            await asyncio.wrap_future(self.start_loading())
        except ModelLoadFailed as exc:
            raise ModelLoadFailed(exc.message) from None

    def _transcribe(self, audio: np.ndarray, *, final: bool, language: str) -> Transcription:
        """The blocking call a worker runs; library errors become ASRFailed here, at the engine's edge."""
        began = time.perf_counter()
        try:
            text, heard = self._decode(self._loaded.result(), audio, final=final, language=language)
        except Exception as exc:
            raise ASRFailed(f"speech recognition failed: {exc}") from None
        return Transcription(text, len(audio) / SAMPLE_RATE, time.perf_counter() - began, heard)

    def _options(self, *, final: bool, language: str) -> dict[str, Any]:
        return {
            "language": None if language == AUTO else language,
            "beam_size": self.beam_size if final else 1,
            "temperature": _FINAL_TEMPERATURES if final else 0.0,
            "without_timestamps": True,
            "condition_on_previous_text": False,
            "vad_filter": False,
        }

    def _decode(
        self, model: WhisperModel, audio: np.ndarray, *, final: bool, language: str
    ) -> tuple[str, str | None]:
        """(text, language): the language Whisper decoded in (detected with ``auto``); None if silent."""
        loudness = frame_rms(audio)
        if is_silent(loudness):
            return "", None
        options = self._options(final=final, language=language)
        segments, info = model.transcribe(pcm_to_float(audio), **options)
        kept = [segment for segment in segments if not hallucinated(segment)]
        text = " ".join(segment.text.strip() for segment in kept).strip()
        if invented_on_silence(text, loudness, kept):
            return "", None
        return text, info.language

    def close(self) -> None:
        """Refuse new work, fail queued finals with ShuttingDown and release the executor threads."""
        self._scheduler.close()

    def release(self) -> None:
        """Close, wait for running calls, and drop the model while the interpreter is still whole."""
        self._scheduler.close()
        self._scheduler.wait_idle()
        self._loaded = concurrent.futures.Future()


_registry_lock = threading.Lock()
_instances: dict[tuple[Any, ...], WhisperASR] = {}
_current: WhisperASR | None = None


def get_shared_asr(config: StreamConfig) -> WhisperASR:
    """The process-wide engine for ``config``'s ASR settings (one WhisperModel shared by all sessions)."""
    global _current
    key = (
        config.model_whisper,
        config.model_cache_dir,
        config.language,
        config.asr_cpu_threads,
        config.asr_workers,
        config.asr_timeout_s,
        config.asr_max_wait_s,
        config.asr_beam_size,
        config.asr_window_padding_s,
    )
    with _registry_lock:
        engine = _instances.get(key)
        if engine is None:
            engine = _instances[key] = WhisperASR(config)
        _current = engine
        return engine


@atexit.register
def _release_models() -> None:
    """Free every model before interpreter teardown, where ctranslate2's destructor would abort."""
    with _registry_lock:
        engines = list(_instances.values())
    for engine in engines:
        engine.release()


def start_loading(config: StreamConfig) -> None:
    """Begin loading the shared model in the background; returns at once and is idempotent."""
    get_shared_asr(config).start_loading()


def process_stats() -> ASRStats:
    """The scheduler figures of every engine in this process, summed (one engine in production)."""
    with _registry_lock:
        engines = list(_instances.values())
    return sum((engine.stats() for engine in engines), ASRStats(0, 0, 0, 0, 0))


def model_readiness() -> tuple[str, str]:
    """(state, detail) of the shared model for /health: idle, loading, ready or failed."""
    engine = _current
    return engine.readiness() if engine is not None else (LoadState.IDLE.value, "not requested yet")
