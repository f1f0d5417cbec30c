"""SessionWatchdog: idle timeout, maximum length and the access check, on short real intervals."""

from __future__ import annotations

import asyncio
import time

from streaming.config import StreamConfig
from streaming.errors import IdleTimeout, SessionExpired, StreamError
from streaming.web.auth import REVOKED
from streaming.web.watchdog import ACCESS_CHECK_INTERVAL_S, SessionWatchdog


class Expiries:
    """Records each ``expire(reason, error)`` call with when it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, StreamError, float]] = []

    def __call__(self, reason: str, error: StreamError) -> None:
        self.calls.append((reason, error, time.monotonic()))


def watchdog(
    *, idle_s: float = 60, max_s: float = 60, access=None, check_s: float = ACCESS_CHECK_INTERVAL_S
) -> tuple[SessionWatchdog, Expiries]:
    expiries = Expiries()
    dog = SessionWatchdog(StreamConfig(), expiries, check_access=access, access_check_interval_s=check_s)
    # The configuration allows whole seconds only; the watchdog takes any interval.
    dog.idle_timeout_s, dog.max_session_s = idle_s, max_s
    return dog, expiries


def test_the_limits_come_from_the_configuration() -> None:
    config = StreamConfig().replace(idle_timeout_s=7, max_session_s=90)
    dog = SessionWatchdog(config, Expiries())
    assert (dog.idle_timeout_s, dog.max_session_s) == (7, 90)
    assert ACCESS_CHECK_INTERVAL_S < 30  # docs/protocol.md: a revoked token ends a session within 30 s


async def test_an_idle_session_expires_after_the_idle_timeout() -> None:
    dog, expiries = watchdog(idle_s=0.2)
    await asyncio.wait_for(dog.run(), 2)
    ((reason, error, at),) = expiries.calls
    assert reason == "idle_timeout" and isinstance(error, IdleTimeout)
    assert (error.code, error.recoverable) == ("IDLE_TIMEOUT", False)
    assert 0.2 <= at - dog.started_at < 0.4


async def test_activity_postpones_the_idle_timeout() -> None:
    dog, expiries = watchdog(idle_s=0.3)
    task = asyncio.create_task(dog.run())
    for _ in range(4):
        await asyncio.sleep(0.15)
        dog.touch()
    assert not task.done() and expiries.calls == []
    await asyncio.wait_for(task, 2)
    ((reason, _, at),) = expiries.calls
    assert reason == "idle_timeout"
    assert 0.3 <= at - dog.last_activity < 0.45


async def test_a_busy_session_still_ends_at_the_maximum_length() -> None:
    dog, expiries = watchdog(idle_s=0.2, max_s=0.5)
    task = asyncio.create_task(dog.run())
    while not task.done():
        dog.touch()
        await asyncio.sleep(0.05)
    ((reason, error, at),) = expiries.calls
    assert reason == "session_expired" and isinstance(error, SessionExpired)
    assert error.code == "SESSION_EXPIRED"
    assert 0.5 <= at - dog.started_at < 0.7


async def test_a_lost_access_ends_the_session_at_the_next_check() -> None:
    checks: list[float] = []

    async def check_access() -> tuple[str, StreamError] | None:
        checks.append(time.monotonic())
        return None if len(checks) < 3 else ("unauthorized", REVOKED)  # revoked before the third check

    dog, expiries = watchdog(access=check_access, check_s=0.1)
    task = asyncio.create_task(dog.run())
    while not task.done():
        dog.touch()
        await asyncio.sleep(0.02)
    ((reason, error, at),) = expiries.calls
    assert (reason, error) == ("unauthorized", REVOKED)
    assert (error.code, error.recoverable) == ("UNAUTHORIZED", False)
    assert len(checks) == 3
    # One check per interval, the first one interval after the start.
    gaps = [b - a for a, b in zip([dog.started_at, *checks], checks, strict=False)]
    assert all(0.1 <= gap < 0.25 for gap in gaps)
    assert at - checks[-1] < 0.05


async def test_without_an_access_check_only_the_time_limits_apply() -> None:
    dog, expiries = watchdog(idle_s=0.3, check_s=0.01)
    await asyncio.wait_for(dog.run(), 2)
    assert [reason for reason, _, _ in expiries.calls] == ["idle_timeout"]


async def test_a_session_still_allowed_goes_on_until_a_time_limit() -> None:
    checks = 0

    async def check_access() -> None:
        nonlocal checks
        checks += 1

    dog, expiries = watchdog(idle_s=0.45, access=check_access, check_s=0.1)
    await asyncio.wait_for(dog.run(), 2)
    assert [reason for reason, _, _ in expiries.calls] == ["idle_timeout"]
    assert 3 <= checks <= 4  # at 0.1, 0.2, 0.3 and 0.4 s, each a little late on a busy machine
