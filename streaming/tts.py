"""Speech synthesis: the engine interface, the pyttsx3 engine, and ordered phrase synthesis.

pyttsx3 (espeak-ng) is not thread-safe and keeps one engine per process, so
:class:`Pyttsx3TTS` runs ``tts_thread_workers`` worker processes
(:mod:`streaming.tts_worker`), each driven by one thread of its own: a thread
sends a phrase, waits for the WAV with the per-phrase timeout, and kills and
restarts its process if it hangs or dies.  The threads and processes know
nothing of event loops, so one engine serves every session of the server
process.  Workers are fresh interpreters, never forks, so they inherit none of
the Whisper model's threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from streaming import tts_worker
from streaming.config import StreamConfig
from streaming.errors import StreamError, TTSFailed, TTSTimeout

logger = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S = 30.0
"""Longest a worker may take to start: a new Python interpreter loading espeak-ng."""
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TTSEngine(Protocol):
    """Turns one phrase into a complete mono 16-bit WAV."""

    name: str

    async def synthesize(self, text: str) -> bytes:
        """WAV bytes for ``text``; raise :class:`TTSFailed` or :class:`TTSTimeout`."""
        ...

    async def aclose(self) -> None:
        """Release the engine's workers."""
        ...


class _WorkerProcess:
    """One synthesis process (``python -m streaming.tts_worker``), used by exactly one thread."""

    def __init__(self, voice: str, rate: int) -> None:
        self.voice_setting = voice
        self.rate = rate
        self.voice: str | None = None
        self.started_in_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the process and wait until its engine is ready; raise :class:`TTSFailed` if not."""
        began = time.monotonic()
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [_PROJECT_ROOT, os.environ.get("PYTHONPATH")])),
        )
        try:
            self._workdir = tempfile.mkdtemp(prefix="tts-worker-")
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streaming.tts_worker",
                    self.voice_setting,
                    str(self.rate),
                    self._workdir,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env=env,
                # Its own session: a Ctrl-C meant for the server must not kill it mid-phrase.
                start_new_session=True,
            )
        except OSError as exc:
            self.kill()
            raise TTSFailed(f"could not start the speech worker: {exc}") from None
        kind, payload = self._receive(WORKER_START_TIMEOUT_S, "start")
        if kind != tts_worker.READY:
            self.kill()
            raise TTSFailed(payload.decode(errors="replace"))
        self.voice = payload.decode()
        self.started_in_s = time.monotonic() - began
        logger.info(
            "tts worker ready",
            extra={"pid": self._process.pid, "voice": self.voice, "startup_s": round(self.started_in_s, 3)},
        )

    def synthesize(self, text: str, timeout_s: float) -> bytes:
        """WAV bytes for ``text``; a worker that hangs, dies or fails is replaced."""
        if self._process is not None and self._process.poll() is not None:
            logger.warning(
                "tts worker exited while idle; starting a new one", extra={"code": self._process.poll()}
            )
            self.kill()
        if self._process is None:
            self.start()
        try:
            return self._exchange(text, timeout_s)
        except StreamError:
            self._restart()
            raise

    def _exchange(self, text: str, timeout_s: float) -> bytes:
        assert self._process is not None and self._process.stdin is not None
        try:
            tts_worker.write_frame(self._process.stdin, tts_worker.TEXT, text.encode())
        except OSError:
            raise TTSFailed(f"the speech worker died (exit code {self._process.poll()})") from None
        kind, payload = self._receive(timeout_s, "synthesis")
        if kind != tts_worker.WAV:
            raise TTSFailed(f"speech synthesis failed: {payload.decode(errors='replace')}")
        if not _usable_wav(payload):
            # espeak-ng very rarely returns an empty file under heavy load; one retry fixes it.
            tts_worker.write_frame(self._process.stdin, tts_worker.TEXT, text.encode())
            kind, payload = self._receive(timeout_s, "synthesis")
            if kind != tts_worker.WAV or not _usable_wav(payload):
                raise TTSFailed("espeak-ng produced no usable audio")
        return payload

    def _receive(self, timeout_s: float, what: str) -> tuple[bytes, bytes]:
        """The next frame from the worker; a worker silent for ``timeout_s`` is killed."""
        assert self._process is not None and self._process.stdout is not None
        readable, _, _ = select.select([self._process.stdout], [], [], timeout_s)
        if not readable:
            self.kill()
            error = TTSTimeout if what == "synthesis" else TTSFailed
            raise error(f"speech {what} took longer than {timeout_s:g} s")
        try:
            return tts_worker.read_frame(self._process.stdout)
        except (EOFError, OSError):
            code = self._process.poll()
            self.kill()
            raise TTSFailed(f"the speech worker died (exit code {code})") from None

    def _restart(self) -> None:
        """Replace the process now, so the next phrase does not wait for a start."""
        self.kill()
        try:
            self.start()
        except TTSFailed as exc:
            logger.warning(
                "tts worker restart failed; retrying on the next phrase", extra={"error": str(exc)}
            )

    def stop(self) -> None:
        """Ask the process to exit, and kill it if it does not."""
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                tts_worker.write_frame(self._process.stdin, tts_worker.QUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=2)
        self.kill()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._process = self._workdir = None


def _usable_wav(wav: bytes) -> bool:
    """True for a non-empty mono 16-bit WAV."""
    try:
        with wave.open(io.BytesIO(wav)) as reader:
            return reader.getnchannels() == 1 and reader.getsampwidth() == 2 and reader.getnframes() > 0
    except (wave.Error, EOFError):
        return False


@dataclass
class _Job:
    text: str
    future: Future[bytes] = field(default_factory=Future)


class Pyttsx3TTS(TTSEngine):
    """pyttsx3 on espeak-ng in ``tts_thread_workers`` worker processes, one engine each.

    Workers start on first use or on :meth:`warm_up`; after :meth:`aclose` the
    next phrase starts them again.
    """

    def __init__(self, config: StreamConfig) -> None:
        self.name = f"pyttsx3:{config.tts_voice}"
        self.voice = config.tts_voice
        self.rate = config.tts_rate
        self.workers = config.tts_thread_workers
        self.timeout_s = config.tts_timeout_s
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._ready: list[Future[_WorkerProcess]] = []

    async def synthesize(self, text: str) -> bytes:
        if not text.strip():
            raise TTSFailed("nothing to synthesize: the phrase is empty")
        job = _Job(text)
        with self._lock:
            self._start_threads()
            self._jobs.put(job)
        return await asyncio.wrap_future(job.future)

    async def warm_up(self) -> list[float]:
        """Start every worker now, so the first phrase is not slowed by process start.

        Returns each worker's start-up time in seconds; raises :class:`TTSFailed`
        if a worker cannot start.
        """
        with self._lock:
            ready = self._start_threads()
        workers = await asyncio.gather(*(asyncio.wrap_future(f) for f in ready))
        return [w.started_in_s or 0.0 for w in workers]

    @property
    def worker_voices(self) -> list[str]:
        """The espeak voice id each started worker reports, e.g. "gmw/en-us"."""
        return [worker.voice or "" for worker in self._started_workers()]

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers, for monitoring."""
        return [worker.pid for worker in self._started_workers() if worker.pid is not None]

    def _started_workers(self) -> list[_WorkerProcess]:
        with self._lock:
            ready = list(self._ready)
        return [f.result() for f in ready if f.done() and f.exception() is None]

    async def aclose(self) -> None:
        with self._lock:
            threads, self._threads, self._ready = self._threads, [], []
            for _ in threads:
                self._jobs.put(None)
            self._jobs = queue.SimpleQueue()
        await asyncio.to_thread(_join_all, threads)

    def _start_threads(self) -> list[Future[_WorkerProcess]]:
        """Start the worker threads unless running; call with ``self._lock`` held."""
        if not self._threads:
            for index in range(self.workers):
                ready: Future[_WorkerProcess] = Future()
                thread = threading.Thread(
                    target=self._drive, args=(self._jobs, ready), name=f"tts-worker-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
                self._ready.append(ready)
        return list(self._ready)

    def _drive(self, jobs: queue.SimpleQueue[_Job | None], ready: Future[_WorkerProcess]) -> None:
        """Thread body: own one worker process and feed it jobs until the ``None`` sentinel."""
        worker = _WorkerProcess(self.voice, self.rate)
        try:
            worker.start()
            ready.set_result(worker)
        except TTSFailed as exc:
            ready.set_exception(exc)
        try:
            while (job := jobs.get()) is not None:
                if not job.future.set_running_or_notify_cancel():
                    continue
                try:
                    job.future.set_result(worker.synthesize(job.text, self.timeout_s))
                except StreamError as exc:
                    job.future.set_exception(exc)
                except Exception as exc:  # a bug must fail the phrase, not strand its caller
                    logger.exception("tts worker thread error")
                    job.future.set_exception(TTSFailed(f"speech synthesis failed: {exc}"))
        finally:
            worker.stop()


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()


_ENGINES = {"pyttsx3": Pyttsx3TTS}
_shared: dict[tuple[object, ...], Pyttsx3TTS] = {}
_shared_lock = threading.Lock()


def get_shared_tts(config: StreamConfig) -> Pyttsx3TTS:
    """The process-wide engine for ``config``'s TTS settings, created on first use.

    Sessions share it and do not close it; :func:`close_shared_tts` does at shutdown.
    """
    key = (
        config.tts_engine,
        config.tts_voice,
        config.tts_rate,
        config.tts_thread_workers,
        config.tts_timeout_s,
    )
    with _shared_lock:
        engine = _shared.get(key)
        if engine is None:
            engine = _shared[key] = _ENGINES[config.tts_engine](config)
        return engine


async def close_shared_tts() -> None:
    """Stop the workers of every shared engine."""
    with _shared_lock:
        engines = list(_shared.values())
    for engine in engines:
        await engine.aclose()


async def synthesize_in_order(
    tts: TTSEngine, phrases: AsyncIterator[str], *, max_pending: int
) -> AsyncIterator[tuple[int, str, bytes]]:
    """Synthesize up to ``max_pending`` phrases at once; yield ``(seq, text, wav)`` in order.

    ``seq`` counts from 0.  At most ``max_pending`` phrases are taken from
    ``phrases`` before the oldest is yielded, which holds back the LLM stream
    feeding them.  A failed phrase raises its error after the earlier phrases
    are yielded; so does an error from ``phrases``.  When iteration ends early
    or is cancelled, pending synthesis is cancelled and awaited, and
    ``phrases`` is closed.
    """
    if max_pending < 1:
        raise ValueError("max_pending must be at least 1")
    slots = asyncio.Semaphore(max_pending)
    ready: asyncio.Queue[tuple[int, str, asyncio.Task[bytes]] | BaseException | None] = asyncio.Queue()
    synthesis: set[asyncio.Task[bytes]] = set()

    async def read_phrases() -> None:
        # One task drives ``phrases`` from start to end, so the source's own
        # context (and its HTTP stream) always lives in the same task.
        seq = 0
        try:
            while True:
                await slots.acquire()
                try:
                    text = await anext(phrases)
                except StopAsyncIteration:
                    break
                task = asyncio.create_task(tts.synthesize(text), name=f"tts-phrase-{seq}")
                synthesis.add(task)
                ready.put_nowait((seq, text, task))
                seq += 1
        except BaseException as exc:
            # Raised by the consumer after the earlier phrases; a cancelled
            # reader also wakes a consumer still waiting for the next phrase.
            ready.put_nowait(exc)
            if not isinstance(exc, Exception):
                raise
            return
        ready.put_nowait(None)

    reader = asyncio.create_task(read_phrases(), name="tts-phrase-reader")
    try:
        while (item := await ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            seq, text, task = item
            wav = await task
            synthesis.discard(task)
            yield seq, text, wav
            slots.release()
    finally:
        reader.cancel()
        for task in synthesis:
            task.cancel()
        await asyncio.gather(reader, *synthesis, return_exceptions=True)
        if isinstance(phrases, AsyncGenerator):
            await phrases.aclose()


def wav_duration(wav: bytes) -> float:
    """Seconds of audio in a WAV; raise ValueError if ``wav`` is not a WAV."""
    try:
        with wave.open(io.BytesIO(wav)) as reader:
            return reader.getnframes() / reader.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None
