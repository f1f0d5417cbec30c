"""A session's inbox: client commands always, audio only within a real-time allowance and a memory bound.

A client may send audio faster than real time for a while (the backlog after a
network stall), but not for ever and not without limit.  :class:`SessionInbox`
takes audio at up to ``max_speed`` times real time plus a burst of ``burst_s``
seconds (a token bucket measured in samples at the sample rate the client
declared), and never holds more than ``burst_s`` seconds of audio the session
has not taken yet, a frame shorter than 10 ms counting as 10 ms so that tiny
frames cannot multiply the per-frame overhead.  A frame that does not fit is
dropped (whole, unless it is too long to ever fit: then what fits is kept), and
the caller gets :class:`AudioTooFast` saying how much audio was lost.

Where audio was dropped the inbox hands out an :class:`AudioGap` before the next
frame, so the session ends the utterance there instead of splicing unrelated
pieces into one: a client far over the pace would otherwise leave pieces with
no pause between them, i.e. endless utterances, the costliest ASR work there is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from streaming.audio import SAMPLE_RATE
from streaming.errors import AudioTooFast

C = TypeVar("C")

MIN_FRAME_S = 0.01
"""A queued frame counts as at least this much audio against the bound."""


@dataclass(frozen=True)
class AudioGap:
    """Audio was dropped here: the next frame does not continue the previous one."""


class _Frame:
    """Queued audio and what it counts against the bound (fixed when queued, whatever the rate later)."""

    __slots__ = ("cost", "data")

    def __init__(self, data: bytes, cost: int) -> None:
        self.data = data
        self.cost = cost


class SessionInbox(Generic[C]):
    """The queue between ``receive()`` and a session's input task; commands are of type ``C``."""

    def __init__(self, *, max_speed: float, burst_s: float) -> None:
        self.max_speed = max_speed
        self.burst_s = burst_s
        self.dropped_s = 0.0
        """Seconds of audio dropped since the session began."""
        self._queue: asyncio.Queue[_Frame | AudioGap | C] = asyncio.Queue()
        self._rate = SAMPLE_RATE
        self._allowance_s = burst_s
        self._refilled_at = time.monotonic()
        self._held_bytes = 0
        self._stream_bytes = 0
        self._gap = False

    @property
    def held_bytes(self) -> int:
        """Queued audio in bytes, a frame shorter than ``MIN_FRAME_S`` counting as that long."""
        return self._held_bytes

    @property
    def limit_bytes(self) -> int:
        """The most :attr:`held_bytes` may reach: ``burst_s`` of audio at the declared rate."""
        return round(self.burst_s * self._rate * 2)

    def qsize(self) -> int:
        """Items queued (audio frames and commands)."""
        return self._queue.qsize()

    def start_stream(self, sample_rate: int) -> None:
        """Audio pushed from now on is a new stream of PCM16 at ``sample_rate``.

        The allowance is kept (in seconds): restarting does not refill it.
        """
        self._rate = sample_rate
        self._stream_bytes = 0
        self._gap = False

    def put(self, command: C) -> None:
        """Queue a command; commands are never dropped."""
        self._queue.put_nowait(command)

    def put_audio(self, data: bytes) -> None:
        """Queue ``data`` if it fits the bounds; raise AudioTooFast when any of it was dropped."""
        now = time.monotonic()
        self._allowance_s = min(self.burst_s, self._allowance_s + (now - self._refilled_at) * self.max_speed)
        self._refilled_at = now
        bytes_per_s = 2 * self._rate
        by_pace = int(self._allowance_s * bytes_per_s)
        by_memory = self.limit_bytes - self._held_bytes
        min_cost = round(MIN_FRAME_S * bytes_per_s)
        room = min(by_pace, by_memory)
        take = len(data)
        if max(take, min_cost) > room:
            # A frame longer than the bound could ever hold keeps what fits now; others go whole.
            take = room if take > self.limit_bytes and room >= min_cost else 0
        # After a gap the session decodes afresh: start on the first byte of a whole sample.
        kept = data[self._stream_bytes % 2 if self._gap else 0 : take]
        self._stream_bytes += len(data)
        if kept:
            if self._gap:
                self._queue.put_nowait(AudioGap())
                self._gap = False
            cost = max(len(kept), min_cost)
            self._queue.put_nowait(_Frame(kept, cost))
            self._held_bytes += cost
            self._allowance_s -= len(kept) / bytes_per_s
        if take < len(data):
            self._gap = True
            self._report_drop((len(data) - take) / bytes_per_s, behind=len(data) <= by_pace)

    async def get(self) -> bytes | AudioGap | C:
        """The next frame's bytes, gap or command, waiting for one."""
        item = await self._queue.get()
        if isinstance(item, _Frame):
            self._held_bytes -= item.cost
            return item.data
        return item

    def _report_drop(self, seconds: float, *, behind: bool) -> None:
        self.dropped_s += seconds
        lost = f"dropped {seconds:.2f} s of audio ({self.dropped_s:.1f} s in this session so far)"
        if behind:
            raise AudioTooFast(
                f"The server is behind on this session's audio and holds at most {self.burst_s:g} s of it: "
                f"{lost}. Send audio at real time."
            )
        raise AudioTooFast(
            f"Audio is arriving faster than {self.max_speed:g}x real time at {self._rate} Hz: {lost}. "
            f"Send audio at real time; a backlog of up to {self.burst_s:g} s is accepted at once."
        )
