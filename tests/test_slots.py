"""Session slots: per-user and total limits, and what release gives back."""

from __future__ import annotations

from streaming.config import StreamConfig
from streaming.web.slots import SessionSlots

CONFIG = StreamConfig().replace(max_sessions=3, max_sessions_per_user=2)


def test_a_user_holds_at_most_the_per_user_limit() -> None:
    slots = SessionSlots()
    assert slots.acquire("alice", CONFIG) and slots.acquire("alice", CONFIG)
    assert not slots.acquire("alice", CONFIG)
    assert slots.total == 2
    assert slots.acquire("bob", CONFIG)  # another user is not held back by alice's limit


def test_the_process_holds_at_most_the_total_limit() -> None:
    slots = SessionSlots()
    assert slots.acquire("alice", CONFIG) and slots.acquire("bob", CONFIG) and slots.acquire("carol", CONFIG)
    assert not slots.acquire("dave", CONFIG)
    assert not slots.acquire("alice", CONFIG)  # under her own limit, but the server is full
    assert slots.total == 3


def test_release_frees_the_slot_for_the_same_user_and_for_others() -> None:
    slots = SessionSlots()
    slots.acquire("alice", CONFIG)
    slots.acquire("alice", CONFIG)
    slots.acquire("bob", CONFIG)
    slots.release("alice")
    assert slots.total == 2
    assert slots.acquire("alice", CONFIG) and not slots.acquire("alice", CONFIG)
    slots.release("bob")
    assert slots.acquire("carol", CONFIG)


def test_releasing_every_slot_leaves_nothing_counted() -> None:
    slots = SessionSlots()
    for user in ("alice", "alice", 7, None):  # any hashable key: a user id, or None when anonymous
        assert slots.acquire(user, CONFIG.replace(max_sessions=10))
    for user in ("alice", 7, None, "alice"):
        slots.release(user)
    assert slots.total == 0
    assert slots.acquire("alice", CONFIG) and slots.acquire("alice", CONFIG)


def test_the_limits_are_read_at_each_acquire() -> None:
    slots = SessionSlots()
    assert slots.acquire("alice", CONFIG)
    assert not slots.acquire("alice", CONFIG.replace(max_sessions_per_user=1))
    assert not slots.acquire("bob", CONFIG.replace(max_sessions=1))
