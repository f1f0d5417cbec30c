"""Synthesis in worker processes, each driven by one thread of its own: the engines' shared pool.

Speech engines keep global state (espeak-ng is not thread-safe; an ONNX voice
holds its own thread pool), so :class:`WorkerPoolTTS` runs ``tts_worker_processes``
worker processes, each loading one voice, each driven by one thread of its own:
a thread sends a phrase, waits for the WAV with the per-phrase timeout, and
kills and restarts its process if it hangs or dies.  The threads and processes
know nothing of event loops, so one engine serves every session of the server
process.  Workers are fresh interpreters (:mod:`streaming.tts.frames`), never
forks; an engine names the worker module and its arguments, and the library's
errors reach this module only as error frames and leave it as
:class:`TTSFailed` or :class:`TTSTimeout`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import io
import itertools
import logging
import math
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
from concurrent.futures import Future
from dataclasses import dataclass, field

from streaming.config import StreamConfig
from streaming.errors import StreamError, TTSFailed, TTSTimeout
from streaming.tts import frames

logger = logging.getLogger(__name__)

WORKER_START_TIMEOUT_S = 30.0
"""Longest a worker may take to start: a new Python interpreter loading its voice."""
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _WorkerProcess:
    """One synthesis process (``python -m MODULE WORKDIR ARGS...``), used by exactly one thread."""

    def __init__(self, module: str, args: list[str]) -> None:
        self.module = module
        self.args = args
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
                [sys.executable, "-m", self.module, self._workdir, *self.args],
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
        if kind != frames.READY:
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
            frames.write_frame(self._process.stdin, frames.TEXT, text.encode())
        except OSError:
            raise TTSFailed(f"the speech worker died (exit code {self._process.poll()})") from None
        kind, payload = self._receive(timeout_s, "synthesis")
        if kind != frames.WAV:
            raise TTSFailed(f"speech synthesis failed: {payload.decode(errors='replace')}")
        if not _usable_wav(payload):
            # espeak-ng very rarely returns an empty file under heavy load; one retry fixes it.
            frames.write_frame(self._process.stdin, frames.TEXT, text.encode())
            kind, payload = self._receive(timeout_s, "synthesis")
            if kind != frames.WAV or not _usable_wav(payload):
                raise TTSFailed("speech synthesis produced no usable audio")
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
            return frames.read_frame(self._process.stdout)
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
                frames.write_frame(self._process.stdin, frames.QUIT)
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


_Queued = tuple[float, int, "_Job | None"]
"""(phrase's place in its reply, arrival number, job or the ``None`` that ends a thread)."""
_LAST = math.inf
"""The place of the ``None`` sentinel: behind every queued phrase."""


class WorkerPoolTTS(abc.ABC):
    """A :class:`~streaming.tts.TTSEngine` whose phrases run in ``tts_worker_processes`` worker processes.

    A subclass sets ``name``, ``label``, ``worker_module`` and ``worker_args``, and says
    which voice a configuration asks it for (:meth:`voice_of`).
    Workers start on first use, on :meth:`start` or on :meth:`warm_up`; after
    :meth:`aclose` the next phrase starts them again, after :meth:`unload` never.
    """

    name: str
    label: str
    worker_module: str
    worker_args: list[str]

    @staticmethod
    @abc.abstractmethod
    def voice_of(config: StreamConfig) -> str:
        """The voice ``config`` asks this engine for: engines that speak the same voice are one."""

    def __init__(self, config: StreamConfig) -> None:
        self.worker_processes = config.tts_worker_processes
        self.timeout_s = config.tts_timeout_s
        self._lock = threading.Lock()
        self._jobs: queue.PriorityQueue[_Queued] = queue.PriorityQueue()
        self._arrivals = itertools.count()
        self._threads: list[threading.Thread] = []
        self._ready: list[Future[_WorkerProcess]] = []
        self._unloaded = False
        self.holders = 0
        """Sessions and replies speaking with this voice now (:func:`streaming.tts.hold_voice`)."""
        self.in_progress = 0
        """Phrases asked for and not yet answered."""

    async def synthesize(self, text: str, *, seq: int = 0) -> bytes:
        """WAV bytes for ``text``, the ``seq``-th phrase of its reply.

        Waiting phrases go to the workers by ``seq``, then in arrival order: a reply's
        first phrase is what its listener waits for, while a later one is needed only
        once the earlier ones have played, so one reply's tail never holds up
        another reply's start.
        """
        if not text.strip():
            raise TTSFailed("nothing to synthesize: the phrase is empty")
        job = _Job(text)
        with self._lock:
            if self._unloaded:
                raise TTSFailed(
                    "this voice was unloaded to make room for another; the next reply has its own"
                )
            self._start_threads()
            self._jobs.put((seq, next(self._arrivals), job))
            self.in_progress += 1
        try:
            return await asyncio.wrap_future(job.future)
        finally:
            with self._lock:
                self.in_progress -= 1

    def start(self) -> None:
        """Start the workers in the background, so the first phrase finds its voice loaded."""
        with self._lock:
            self._start_threads()

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
        """The voice each started worker reports loading, e.g. "gmw/en-us"."""
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
        await asyncio.to_thread(_join_all, self._stop_threads())

    def unload(self) -> None:
        """Stop the workers for good, without waiting: phrases already queued are still
        answered, a later one fails.  For a voice no session uses any more."""
        with self._lock:
            self._unloaded = True
        self._stop_threads()

    def _stop_threads(self) -> list[threading.Thread]:
        """Tell every worker thread to end once the phrases queued before are done."""
        with self._lock:
            threads, self._threads, self._ready = self._threads, [], []
            for _ in threads:
                self._jobs.put((_LAST, next(self._arrivals), None))
            self._jobs = queue.PriorityQueue()
        return threads

    def _start_threads(self) -> list[Future[_WorkerProcess]]:
        """Start the worker threads unless running; call with ``self._lock`` held."""
        if not self._threads:
            for index in range(self.worker_processes):
                ready: Future[_WorkerProcess] = Future()
                thread = threading.Thread(
                    target=self._drive, args=(self._jobs, ready), name=f"tts-worker-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
                self._ready.append(ready)
        return list(self._ready)

    def _drive(self, jobs: queue.PriorityQueue[_Queued], ready: Future[_WorkerProcess]) -> None:
        """Thread body: own one worker process and feed it jobs until the ``None`` sentinel."""
        worker = _WorkerProcess(self.worker_module, self.worker_args)
        try:
            worker.start()
            ready.set_result(worker)
        except TTSFailed as exc:
            ready.set_exception(exc)
        try:
            while (job := jobs.get()[2]) is not None:
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
