"""Token buckets: burst, refill at the rate, the cap, debt paid back, and the advertised slack.

The bucket reads ``time.monotonic``; these tests give it a clock they move by hand, so
every refill is exact.
"""

from __future__ import annotations

import time

import pytest

from streaming import rate_limit
from streaming.rate_limit import (
    COMMAND_BURST,
    COMMANDS_PER_S,
    SLACK,
    TYPED_TURN_BURST,
    TYPED_TURNS_PER_S,
    TokenBucket,
    allowance,
)


class Clock:
    """Stands in for the ``time`` module inside :mod:`streaming.rate_limit`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(rate_limit, "time", fake)
    return fake


def takes(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.take() for _ in range(attempts))


def test_a_full_bucket_gives_its_burst_then_refuses(clock) -> None:
    bucket = TokenBucket(rate=2.0, capacity=5)
    assert takes(bucket, 8) == 5
    assert not bucket.take()


def test_tokens_come_back_at_the_rate(clock) -> None:
    bucket = TokenBucket(rate=2.0, capacity=5)
    takes(bucket, 5)
    clock.now += 0.4  # 0.8 of a token: not yet one
    assert not bucket.take()
    clock.now += 0.1
    assert bucket.take() and not bucket.take()
    clock.now += 1.5  # three tokens
    assert takes(bucket, 5) == 3


def test_an_idle_bucket_saves_no_more_than_its_capacity(clock) -> None:
    bucket = TokenBucket(rate=2.0, capacity=5)
    takes(bucket, 5)
    clock.now += 3600
    assert takes(bucket, 10) == 5


def test_spending_after_the_fact_leaves_a_debt_paid_back_at_the_rate(clock) -> None:
    bucket = TokenBucket(rate=1.0, capacity=2)  # the ASR partial budget: compute seconds per second
    assert bucket.available()
    bucket.spend(5.0)  # a call that took longer than the balance
    assert not bucket.available()
    clock.now += 2.9  # the balance is -0.1
    assert not bucket.available()
    clock.now += 0.2  # +0.1: any positive balance will do for another call
    assert bucket.available()
    assert not bucket.take()  # but a message needs a whole token


def test_allowance_adds_the_slack_to_the_advertised_burst(clock) -> None:
    commands = allowance(COMMANDS_PER_S, COMMAND_BURST)
    assert (commands.rate, commands.capacity) == (COMMANDS_PER_S, COMMAND_BURST + SLACK)
    assert takes(commands, 100) == COMMAND_BURST + SLACK
    typed = allowance(TYPED_TURNS_PER_S, TYPED_TURN_BURST)
    assert takes(typed, 20) == TYPED_TURN_BURST + SLACK
    clock.now += 1 / TYPED_TURNS_PER_S  # the advertised pace: one more every 2 s
    assert typed.take() and not typed.take()


def test_the_real_clock_refills_too() -> None:
    slow, fast = TokenBucket(rate=0.001, capacity=1), TokenBucket(rate=1000.0, capacity=1)
    assert slow.take() and fast.take()
    time.sleep(0.01)  # ten tokens' worth for the fast bucket, a hundred-thousandth for the slow one
    assert fast.take() and not slow.take()
