"""CPU time and resident memory of a process and its children, read from ``/proc``.

psutil is not installed; ``/proc/<pid>/stat`` (utime, stime, ppid) and
``/proc/<pid>/status`` (VmRSS) are all the benchmark needs.  The server's
children are its TTS worker processes, so "tree" figures are the whole server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


@dataclass(frozen=True)
class ProcSample:
    """One reading: RSS and CPU seconds of the process and of its tree, our own CPU, the machine's."""

    at: float
    rss_main: int
    rss_tree: int
    cpu_main: float
    cpu_tree: float
    cpu_self: float
    cpu_machine: float


def _stat_fields(pid: int) -> list[str]:
    text = (_PROC / str(pid) / "stat").read_text()
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def _cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _status_bytes(pid: int, key: str) -> int:
    """A ``kB`` line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in bytes."""
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no Vm* lines


def _rss_bytes(pid: int) -> int:
    return _status_bytes(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    """The most ``pid`` was ever resident (the kernel's high-water mark), whenever samples were taken."""
    return _status_bytes(pid, "VmHWM")


def _machine_busy_seconds() -> float:
    """CPU seconds every core spent on anything but idle and I/O wait since boot (steal included)."""
    fields = (_PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


@dataclass
class OtherLoad:
    """CPU the rest of the machine used (percent of one core) since creation, this process excluded."""

    _at: float = field(default_factory=time.monotonic)
    _machine: float = field(default_factory=lambda: _machine_busy_seconds())
    _own: float = field(default_factory=lambda: sum(os.times()[:2]))

    def percent(self) -> float:
        elapsed = max(time.monotonic() - self._at, 1e-9)
        other = (_machine_busy_seconds() - self._machine) - (sum(os.times()[:2]) - self._own)
        return round(max(0.0, 100 * other / elapsed), 1)


def descendants(pid: int) -> list[int]:
    """Process ids of every live descendant of ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found.extend(children)
        frontier.extend(children)
    return found


def tree_rss(pid: int) -> dict[int, int]:
    """RSS in bytes of ``pid`` and of each live descendant, by process id (``pid`` first).

    Raise ProcessLookupError if ``pid`` is gone; a descendant that exits meanwhile is left out.
    """
    try:
        found = {pid: _rss_bytes(pid)}
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    for child in descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            found[child] = _rss_bytes(child)
    return found


def sample(pid: int) -> ProcSample:
    """Read ``pid`` and its descendants now; raise ProcessLookupError if ``pid`` is gone."""
    try:
        rss_main, cpu_main = _rss_bytes(pid), _cpu_seconds(pid)
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    rss_tree, cpu_tree = rss_main, cpu_main
    for child in descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            rss_tree += _rss_bytes(child)
            cpu_tree += _cpu_seconds(child)
    own = os.times()
    return ProcSample(
        time.monotonic(),
        rss_main,
        rss_tree,
        cpu_main,
        cpu_tree,
        own.user + own.system,
        _machine_busy_seconds(),
    )


@dataclass
class Sampler:
    """Samples a process tree every ``interval_s`` in a task while a measurement runs."""

    pid: int
    interval_s: float = 0.5
    samples: list[ProcSample] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> Sampler:
        self.samples.append(sample(self.pid))
        self._task = asyncio.create_task(self._run(), name="proc-sampler")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(ProcessLookupError):
            self.samples.append(sample(self.pid))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(ProcessLookupError):
                self.samples.append(sample(self.pid))

    def summary(self) -> dict[str, float]:
        """Mean CPU use over the run (percent of one core) and peak and median RSS in MB.

        ``other_cpu_percent`` is what the rest of the machine used meanwhile: work
        that competed with the server (other people's jobs on a shared machine).
        """
        first, last = self.samples[0], self.samples[-1]
        elapsed = max(last.at - first.at, 1e-9)

        def percent(attribute: str) -> float:
            return 100 * (getattr(last, attribute) - getattr(first, attribute)) / elapsed

        peak_busy = max(
            (
                (b.cpu_tree - a.cpu_tree) / max(b.at - a.at, 1e-9)
                for a, b in zip(self.samples, self.samples[1:], strict=False)
            ),
            default=0.0,
        )
        rss_main = sorted(s.rss_main for s in self.samples)
        return {
            "cpu_percent": round(percent("cpu_tree"), 1),
            "cpu_percent_main": round(percent("cpu_main"), 1),
            "client_cpu_percent": round(percent("cpu_self"), 1),
            "other_cpu_percent": round(
                max(0.0, percent("cpu_machine") - percent("cpu_tree") - percent("cpu_self")), 1
            ),
            "cpu_percent_peak": round(100 * peak_busy, 1),
            "rss_mb_peak": round(rss_main[-1] / MB, 1),
            "rss_mb_median": round(rss_main[len(rss_main) // 2] / MB, 1),
            "tree_rss_mb_peak": round(max(s.rss_tree for s in self.samples) / MB, 1),
        }
