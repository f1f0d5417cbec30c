"""Concurrent-session accounting for one server process (per user and in total)."""

from __future__ import annotations

from collections import Counter

from streaming.config import StreamConfig


class SessionSlots:
    """Counts open sessions; ``acquire`` refuses past STREAM_MAX_SESSIONS(_PER_USER)."""

    def __init__(self) -> None:
        self._per_user: Counter[object] = Counter()

    @property
    def total(self) -> int:
        return sum(self._per_user.values())

    def acquire(self, user_key: object, config: StreamConfig) -> bool:
        if self.total >= config.max_sessions or self._per_user[user_key] >= config.max_sessions_per_user:
            return False
        self._per_user[user_key] += 1
        return True

    def release(self, user_key: object) -> None:
        self._per_user[user_key] -= 1
        if self._per_user[user_key] <= 0:
            del self._per_user[user_key]
