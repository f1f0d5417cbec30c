"""How fast a client may send commands, typed turns and settings changes: token buckets, refused
beyond with an error.

Audio has its own bound (:mod:`streaming.inbox`); JSON commands and typed messages are
small but each costs a dispatch, and a typed message a stored turn, so a client looping
on ``send`` must hit a limit well above what a person or a well-behaved program does.
"""

from __future__ import annotations

import time

COMMANDS_PER_S = 20.0
COMMAND_BURST = 50
TYPED_TURNS_PER_S = 0.5
TYPED_TURN_BURST = 5
CONFIGURES_PER_S = 1.0
CONFIGURE_BURST = 5
"""Settings changes: each may load a voice, and each is a journaled write of up to a whole
system prompt, which during a database outage stays on disk until the database is back."""
SLACK = 2
"""Tokens the server allows beyond the burst it advertises: a client that paces itself by the
advertised limits measures time at its end, and a message that reached the server late (a busy
network or server) must not make the next one look early."""


def allowance(rate: float, advertised_burst: float) -> TokenBucket:
    """The server's bucket for a limit advertised as ``rate`` and ``advertised_burst``."""
    return TokenBucket(rate, advertised_burst + SLACK)


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up.

    :meth:`take` spends one token if there is one (a message allowance); :meth:`available`
    and :meth:`spend` let a cost known only afterwards drive the balance below zero (the
    ASR partial budget, paid in compute seconds when a call ends).
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self) -> bool:
        self._refill()
        return self._tokens > 0

    def spend(self, amount: float) -> None:
        self._refill()
        self._tokens -= amount

    def take(self) -> bool:
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
