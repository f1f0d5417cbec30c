"""Prometheus metrics of this host's voice sessions: defined here once, fed by the Channels edge.

Nothing here measures on its own. The consumer (``streaming/web/consumer.py``) gives each
session's events to a :class:`SessionMetrics`: turns are counted by the status they end with,
stage latencies are the per-turn figures the pipeline already reports (``TurnMetrics``, named in
:data:`streaming.metrics.METRIC_FIELDS`), for spoken turns only as in :mod:`conversations.latency`,
and errors are the ``error`` events clients are sent. The ASR figures are the scheduler's own
counts (:func:`streaming.asr.process_stats`), sampled once a second off the event loop. It lives
beside the recorder because, like it, it reads the core's event types and knows no wire.

Several daphne workers on one host answer as one through prometheus_client's multiprocess mode:
with ``PROMETHEUS_MULTIPROC_DIR`` set every process keeps its values in files there, and the
worker that serves ``/metrics`` sums them all. Live gauges (sessions, ASR queue) count only
processes that are alive: a worker that exits removes its files, and a scrape removes those of a
worker that died without doing so (``kill -9``). Updates are a lock and a write to a memory-mapped
file, cheap enough for the event loop. Setting up the directory: ``docs/metrics.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from pathlib import Path

from django.conf import settings
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from streaming.asr import process_stats
from streaming.events import ErrorEvent, Event, FinalTranscript, TurnFinished, TurnMetrics
from streaming.metrics import STAGES

from .latency import is_spoken
from .models import TurnStatus

LATENCY_BUCKETS_S = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
"""Fine where a spoken reply feels quick or slow (0.2–1.5 s), coarse up to where it has failed."""

STAGE_FIELDS = {field.name.removesuffix("_ms"): field.name for field in STAGES} | {"asr": "asr_ms"}
"""Histogram ``stage`` label → ``TurnMetrics`` key (in ms): the spans of :data:`STAGES`, and the
final's ASR compute time, which falls inside endpointing."""

ASR_SAMPLE_INTERVAL_S = 1.0

# No "_created" series: multiprocess mode has none, so one process answers like several.
disable_created_metrics()

SESSIONS_ACTIVE = Gauge("voice_sessions_active", "Voice sessions open now.", multiprocess_mode="livesum")
TURNS = Counter("voice_turns", "Turns that reached their end state, by that state.", ["status"])
STAGE_LATENCY = Histogram(
    "voice_stage_latency_seconds",
    "Per-turn latency of each pipeline stage, spoken turns only.",
    ["stage"],
    buckets=LATENCY_BUCKETS_S,
)
ERRORS = Counter("voice_errors", "Errors sent to clients, by protocol error code.", ["code"])
ASR_QUEUE_DEPTH = Gauge(
    "voice_asr_queue_depth", "Final transcriptions waiting for an ASR worker.", multiprocess_mode="livesum"
)
ASR_PARTIALS_SKIPPED = Counter(
    "voice_asr_partials_skipped", "Partial transcriptions skipped because ASR was busy or over budget."
)

# Every series a dashboard expects exists from the start, at zero; error codes appear when first sent.
for _status in TurnStatus.values:
    if _status != TurnStatus.PENDING:
        TURNS.labels(_status)
for _stage in STAGE_FIELDS:
    STAGE_LATENCY.labels(_stage)


class SessionMetrics:
    """One open session's contribution: counted open until :meth:`close`; its events observed."""

    def __init__(self) -> None:
        self._spoken: set[str] = set()
        self._closed = False
        SESSIONS_ACTIVE.inc()
        _asr_sampler.start()

    def observe(self, event: Event) -> None:
        """Count what ``event`` says (a turn's end, its latencies, an error); ignore the rest."""
        match event:
            case FinalTranscript(turn_id=turn_id, source=source) if is_spoken(source):
                self._spoken.add(turn_id)
            case TurnMetrics(turn_id=turn_id, values=values) if turn_id in self._spoken:
                for stage, key in STAGE_FIELDS.items():
                    if values.get(key) is not None:
                        STAGE_LATENCY.labels(stage).observe(values[key] / 1000)
            case TurnFinished(turn_id=turn_id, status=status):
                self._spoken.discard(turn_id)
                TURNS.labels(status).inc()
            case ErrorEvent(code=code, count=count):
                count_error(code, count)

    def close(self) -> None:
        """The session ended; later calls do nothing."""
        if not self._closed:
            self._closed = True
            SESSIONS_ACTIVE.dec()


def count_error(code: str, count: int = 1) -> None:
    """``count`` errors of ``code`` were sent (also those refused before a session opened)."""
    ERRORS.labels(code).inc(count)


_exiting = threading.Event()
"""Set as the process exits: the sampler stops writing values its exit just removed."""


class _ASRSampler:
    """Copies this process's ASR scheduler figures into the metrics every second, on its own thread.

    Sampled rather than reported by the scheduler, which stays free of any metrics library; the
    queue is at most a second stale, and a scrape samples the process that answers it first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._skipped = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                # A daemon: it holds nothing that needs closing, and must not delay the process's exit.
                self._thread = threading.Thread(target=self._run, name="metrics-asr-sampler", daemon=True)
                self._thread.start()

    def sample(self) -> None:
        stats = process_stats()
        with self._lock:
            ASR_QUEUE_DEPTH.set(stats.queued_finals)
            ASR_PARTIALS_SKIPPED.inc(stats.partials_skipped - self._skipped)
            self._skipped = stats.partials_skipped

    def _run(self) -> None:
        while not _exiting.wait(ASR_SAMPLE_INTERVAL_S):
            self.sample()


_asr_sampler = _ASRSampler()


def exposition() -> bytes:
    """The text to answer a scrape with: this host's workers summed (multiprocess mode), else this one.

    Reads files in multiprocess mode: call it off the event loop.
    """
    _asr_sampler.sample()
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if directory is None:
        return generate_latest(REGISTRY)
    _forget_dead_processes(directory)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def _forget_dead_processes(directory: str) -> None:
    """Drop the live gauges of workers that died without :func:`_process_exits` (killed, crashed).

    Workers of one host share its process ids, which is what multiprocess mode assumes anyway.
    """
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):  # another worker's scrape removed it first
                mark_process_dead(pid, directory)
        except PermissionError:  # alive, under another user
            pass


@atexit.register
def _process_exits() -> None:
    """A worker that exits takes its sessions and ASR queue out of the host's live sums."""
    _exiting.set()
    if settings.PROMETHEUS_MULTIPROC_DIR is not None:
        mark_process_dead(os.getpid(), settings.PROMETHEUS_MULTIPROC_DIR)
