"""Finals first and fair across sessions: which speech-recognition call runs next, and for how long.

Whisper is the scarce resource (every call runs the encoder over the audio plus
a few seconds of padding, see :mod:`streaming.asr.window`, and holds a worker's CPU
threads until it ends), so :class:`ASRScheduler` runs the blocking calls on an
executor it owns and decides their order:

* finals always start before any partial.  They queue per owner (one session),
  in order within an owner, and the next final comes from the owner served
  least (:class:`FairQueue`), so however many finals one session has queued,
  another session's final waits at most for the calls already running and one
  call of each other session with finals waiting;
* a partial runs only if a worker is free *now*, no final is waiting and the
  global partial budget (a :class:`~streaming.rate_limit.TokenBucket` of compute
  seconds) allows it; otherwise it is skipped (``None``), never queued, so partial
  cadence degrades gracefully as sessions grow and finals keep their latency;
* timeouts measure the work, not the wait: ``timeout_s`` counts from the moment
  a worker starts the call.  A final still queued after ``max_wait_s`` is
  dropped with :class:`ASRTimeout` as well, so a caller is never left waiting
  forever when the server is overloaded or every worker hangs;
* a waiter may be cancelled at any time: a queued call is dropped, a running
  one finishes in the background and its result is discarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import astuple, dataclass, field
from typing import Generic, TypeVar

from streaming.errors import ASRTimeout, ShuttingDown
from streaming.rate_limit import TokenBucket

T = TypeVar("T")
R = TypeVar("R")

BUDGET_BURST_S = 1.0
"""Compute seconds per worker the partial budget holds when full: partials may burst up to this."""


@dataclass(frozen=True)
class ASRStats:
    """A snapshot of the scheduler: calls running and queued, and totals since start-up."""

    running: int
    queued_finals: int
    finals_done: int
    partials_done: int
    partials_skipped: int

    def __add__(self, other: ASRStats) -> ASRStats:
        """Field by field: the figures of several schedulers together."""
        return ASRStats(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


class FairQueue(Generic[T]):
    """Items queued per owner: in order within an owner, and the owner served least goes first.

    Start-time fair queueing with one unit per item.  Each owner's next item has
    a virtual start time: one after its previous item's, or the virtual time of
    the item served last if that is later (an owner that was idle gets no credit
    for it); the smallest start goes first, ties to the earlier arrival.  So an
    owner with a long backlog alternates with everyone else, and one that keeps
    refilling its queue as it drains cannot jump ahead of owners already waiting.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, deque[T]] = {}
        self._rank: dict[Hashable, tuple[int, int]] = {}
        self._next_start: dict[Hashable, int] = {}
        """Where owners with nothing queued would start again, kept while ahead of the virtual time."""
        self._virtual_time = 0
        self._arrivals = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[T]:
        for items in self._items.values():
            yield from items

    def push(self, owner: Hashable, item: T) -> None:
        items = self._items.get(owner)
        if items is None:
            items = self._items[owner] = deque()
            start = max(self._virtual_time, self._next_start.pop(owner, 0))
            self._rank[owner] = (start, next(self._arrivals))
        items.append(item)

    def pop(self, accept: Callable[[T], bool]) -> T | None:
        """The next item ``accept`` takes (None when empty); items it refuses are discarded uncharged."""
        while self._items:
            owner = min(self._rank, key=self._rank.__getitem__)
            items = self._items[owner]
            item = items.popleft()
            taken = accept(item)
            start = self._rank[owner][0]
            after = start + 1 if taken else start
            if items:
                self._rank[owner] = (after, next(self._arrivals)) if taken else self._rank[owner]
            else:
                del self._items[owner], self._rank[owner]
                self._next_start[owner] = after
            if taken:
                self._virtual_time = start
                self._next_start = {o: s for o, s in self._next_start.items() if s > start}
                return item
        return None

    def drain(self) -> list[T]:
        """Remove and return every item."""
        items = list(self)
        self._items.clear()
        self._rank.clear()
        self._next_start.clear()
        return items


@dataclass(eq=False)
class _Job(Generic[R]):
    call: Callable[[], R]
    final: bool
    loop: asyncio.AbstractEventLoop
    started: asyncio.Future[None]
    """Resolved in the waiter's loop when a worker takes the job (a one-way signal: cancelling it
    on the waiter's side never races with a worker starting the job)."""
    future: concurrent.futures.Future[R] = field(default_factory=concurrent.futures.Future)
    started_at: float | None = None

    @classmethod
    def create(cls, call: Callable[[], R], *, final: bool) -> _Job[R]:
        loop = asyncio.get_running_loop()
        return cls(call, final, loop, loop.create_future())

    def mark_started(self) -> None:
        """Record the start and wake the waiter (lock held; any thread)."""
        self.started_at = time.monotonic()
        with contextlib.suppress(RuntimeError):  # the waiter's loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(_resolve, self.started)


def _resolve(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)


def _claim(job: _Job) -> bool:
    """Mark a queued job running; False if its waiter cancelled it meanwhile."""
    return job.future.set_running_or_notify_cancel()


class ASRScheduler:
    """Runs blocking calls on ``workers`` threads, finals first and fair per owner (see the module)."""

    def __init__(
        self, *, workers: int, timeout_s: float, max_wait_s: float, partial_share: float | None
    ) -> None:
        """``partial_share`` is the fraction of worker time partials may use (None: no budget)."""
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_wait_s = max_wait_s
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asr")
        self._lock = threading.Lock()
        self._finals: FairQueue[_Job] = FairQueue()
        self._running = 0
        self._done = {True: 0, False: 0}
        self._skipped = 0
        self._closed = False
        self._budget = (
            None
            if partial_share is None
            else TokenBucket(rate=partial_share * workers, capacity=BUDGET_BURST_S * workers)
        )

    def stats(self) -> ASRStats:
        with self._lock:
            queued = sum(not job.future.cancelled() for job in self._finals)
            return ASRStats(self._running, queued, self._done[True], self._done[False], self._skipped)

    async def final(self, owner: Hashable, call: Callable[[], R]) -> R:
        """Run ``call`` after the finals queued before it by ``owner``, taking turns with other owners."""
        job = _Job.create(call, final=True)
        with self._lock:
            self._check_open()
            self._finals.push(owner, job)
            self._dispatch()
        return await self._result(job)

    async def partial(self, call: Callable[[], R], *, spare: int = 0) -> R | None:
        """Run ``call`` if a worker is free now (and ``spare`` more stay free), no final waits and
        the budget allows; None means skipped."""
        job = _Job.create(call, final=False)
        with self._lock:
            self._check_open()
            over_budget = self._budget is not None and not self._budget.available()
            if self._finals or self._running + spare >= self.workers or over_budget:
                self._skipped += 1
                return None
            job.future.set_running_or_notify_cancel()
            self._start(job)
        return await self._result(job)

    def skip_partial(self) -> None:
        """Count a partial the engine skipped before asking (e.g. while its model loads)."""
        with self._lock:
            self._skipped += 1

    async def _result(self, job: _Job[R]) -> R:
        kind = "final" if job.final else "partial"
        outcome = asyncio.wrap_future(job.future)
        try:
            await asyncio.wait(
                [outcome, job.started], timeout=self.max_wait_s, return_when=asyncio.FIRST_COMPLETED
            )
            if outcome.done():
                return outcome.result()
            # Under the lock a job is either still queued (and dropped here) or already started.
            with self._lock:
                dropped = job.future.cancel()
                started_at = job.started_at
            if dropped:
                raise ASRTimeout(f"{kind} transcription waited {self.max_wait_s:g} s for a free worker")
            if started_at is None:  # ended without starting: the scheduler closed meanwhile
                return await outcome
            try:
                return await asyncio.wait_for(outcome, self.timeout_s - (time.monotonic() - started_at))
            except TimeoutError:
                raise ASRTimeout(f"{kind} transcription ran longer than {self.timeout_s:g} s") from None
        finally:
            # Cancelled or timed out: a queued job is dropped; a running one cannot be stopped.
            outcome.cancel()
            job.started.cancel()

    def _check_open(self) -> None:
        if self._closed:
            raise ShuttingDown("speech recognition is shutting down")

    def _dispatch(self) -> None:
        """Start queued finals while workers are free (lock held)."""
        while self._running < self.workers:
            job = self._finals.pop(_claim)
            if job is None:
                return
            self._start(job)

    def _start(self, job: _Job) -> None:
        job.mark_started()
        self._running += 1
        self._executor.submit(self._run, job)

    def _run(self, job: _Job) -> None:
        began = time.perf_counter()
        try:
            result = job.call()
        except Exception as exc:  # the caller's own error (ASRFailed), delivered to the waiter
            error: Exception | None = exc
        else:
            error = None
        # Free the worker before waking the waiter, so its next request sees the capacity.
        with self._lock:
            self._running -= 1
            self._done[job.final] += 1
            if not job.final and self._budget is not None:
                self._budget.spend(time.perf_counter() - began)
            if not self._closed:
                self._dispatch()
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    def close(self) -> None:
        """Refuse new work, fail queued finals with ShuttingDown and release the executor threads."""
        with self._lock:
            self._closed = True
            pending = self._finals.drain()
        for job in pending:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ShuttingDown("speech recognition is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def wait_idle(self) -> None:
        """Block until running calls have finished (after :meth:`close`)."""
        self._executor.shutdown(wait=True)
