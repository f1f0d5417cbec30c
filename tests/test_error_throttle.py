"""ErrorThrottle: one error per kind per window, the rest counted into one summary."""

from __future__ import annotations

import asyncio

from streaming.events import ErrorEvent
from streaming.web.error_throttle import ErrorThrottle


async def test_a_storm_is_one_event_now_and_one_summary_per_window() -> None:
    delivered: list[ErrorEvent] = []

    async def deliver(event: ErrorEvent) -> None:
        delivered.append(event)

    throttle = ErrorThrottle(deliver, window_s=0.2)
    for index in range(50):
        await throttle.submit(ErrorEvent("NOT_STARTED", f"frame {index}", True))
    assert [(e.message, e.count) for e in delivered] == [("frame 0", 1)]
    await asyncio.sleep(0.3)
    assert len(delivered) == 2 and delivered[1].count == 49 and delivered[1].message.startswith("frame 49")
    await throttle.submit(ErrorEvent("NOT_STARTED", "after the storm", True))
    await asyncio.sleep(0.3)
    assert delivered[-1].count == 1  # a new window: delivered at once (or alone in its summary)
    assert sum(e.count for e in delivered) == 51


async def test_errors_of_other_kinds_or_turns_are_not_held_back_and_close_flushes() -> None:
    delivered: list[ErrorEvent] = []

    async def deliver(event: ErrorEvent) -> None:
        delivered.append(event)

    throttle = ErrorThrottle(deliver, window_s=60)
    await throttle.submit(ErrorEvent("ASR_TIMEOUT", "slow", True, turn_id="a"))
    await throttle.submit(ErrorEvent("ASR_TIMEOUT", "slow", True, turn_id="b"))
    await throttle.submit(ErrorEvent("BAD_MESSAGE", "not json", True))
    await throttle.submit(ErrorEvent("BAD_MESSAGE", "not json either", True))
    await throttle.submit(ErrorEvent("BAD_MESSAGE", "nor this", True))
    assert [(e.code, e.turn_id) for e in delivered] == [
        ("ASR_TIMEOUT", "a"),
        ("ASR_TIMEOUT", "b"),
        ("BAD_MESSAGE", None),
    ]
    await throttle.aclose()
    assert (delivered[-1].code, delivered[-1].count) == ("BAD_MESSAGE", 2)
    assert delivered[-1].message.startswith("nor this")
