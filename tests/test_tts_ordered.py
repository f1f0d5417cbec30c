"""Ordered synthesis with a scripted engine whose phrases finish exactly when the test says.

The real espeak-ng engine runs :func:`synthesize_in_order` in ``test_tts.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streaming.errors import LLMTimeout, TTSFailed
from streaming.tts import synthesize_in_order


class ScriptedTTS:
    """A TTS whose phrases finish when the test releases them; it records what happened."""

    name = "scripted"

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.fail = fail
        self.seqs: dict[str, int] = {}

    def gate(self, text: str) -> asyncio.Event:
        return self.release.setdefault(text, asyncio.Event())

    async def synthesize(self, text: str, *, seq: int = 0) -> bytes:
        self.started.append(text)
        self.seqs[text] = seq
        try:
            await self.gate(text).wait()
        except asyncio.CancelledError:
            self.cancelled.append(text)
            raise
        if text in self.fail:
            raise TTSFailed(f"cannot say {text!r}")
        self.finished.append(text)
        return text.encode()

    async def aclose(self) -> None:
        """Nothing to release."""


class Source:
    """An async phrase source that records how far it has been read and whether it was closed."""

    def __init__(self, texts: list[str], error: Exception | None = None) -> None:
        self.texts = texts
        self.error = error
        self.pulled = 0
        self.closed = False

    async def phrases(self) -> AsyncIterator[str]:
        try:
            for text in self.texts:
                self.pulled += 1
                yield text
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True


async def settle() -> None:
    """Let every ready task run until all are waiting on something the test controls."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_phrases_finishing_out_of_order_are_yielded_in_seq_order():
    tts = ScriptedTTS()
    source = Source(["a", "b", "c", "d"])
    results: list[tuple[int, str, bytes]] = []

    async def consume() -> None:
        async for item in synthesize_in_order(tts, source.phrases(), max_pending=4):
            results.append(item)

    consumer = asyncio.create_task(consume())
    await settle()
    assert tts.started == ["a", "b", "c", "d"]
    assert tts.seqs == {"a": 0, "b": 1, "c": 2, "d": 3}  # the engine knows each phrase's place

    for text in ["d", "b", "c"]:
        tts.gate(text).set()
        await settle()
    assert tts.finished == ["d", "b", "c"]
    assert results == []  # "a" still holds the line

    tts.gate("a").set()
    await consumer
    assert results == [(0, "a", b"a"), (1, "b", b"b"), (2, "c", b"c"), (3, "d", b"d")]
    assert source.closed


async def test_source_is_read_no_further_ahead_than_max_pending():
    tts = ScriptedTTS()
    source = Source(["p0", "p1", "p2", "p3"])
    results: list[int] = []

    async def consume() -> None:
        async for seq, _, _ in synthesize_in_order(tts, source.phrases(), max_pending=2):
            results.append(seq)

    consumer = asyncio.create_task(consume())
    await settle()
    assert (source.pulled, tts.started) == (2, ["p0", "p1"])

    tts.gate("p1").set()
    await settle()
    assert (source.pulled, results) == (2, [])

    tts.gate("p0").set()
    await settle()
    assert results == [0, 1]
    assert (source.pulled, tts.started) == (4, ["p0", "p1", "p2", "p3"])

    for text in ["p2", "p3"]:
        tts.gate(text).set()
    await consumer
    assert results == [0, 1, 2, 3]


async def test_cancelling_the_consumer_cancels_pending_synthesis_and_closes_the_source():
    tts = ScriptedTTS()
    source = Source(["a", "b", "c", "d"])
    results: list[int] = []

    async def consume() -> None:
        async for seq, _, _ in synthesize_in_order(tts, source.phrases(), max_pending=3):
            results.append(seq)

    consumer = asyncio.create_task(consume())
    await settle()
    tts.gate("a").set()
    await settle()
    assert results == [0] and tts.started == ["a", "b", "c", "d"]

    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer

    assert sorted(tts.cancelled) == ["b", "c", "d"]
    assert source.closed
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_stopping_early_cancels_pending_synthesis():
    tts = ScriptedTTS()
    tts.gate("a").set()
    source = Source(["a", "b", "c"])
    ordered = synthesize_in_order(tts, source.phrases(), max_pending=3)

    assert await anext(ordered) == (0, "a", b"a")
    await settle()
    assert tts.started == ["a", "b", "c"]
    await ordered.aclose()

    assert sorted(tts.cancelled) == ["b", "c"]
    assert source.closed
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_failed_phrase_is_raised_after_the_earlier_ones():
    tts = ScriptedTTS(fail={"b"})
    for text in ["a", "b"]:
        tts.gate(text).set()
    source = Source(["a", "b", "c"])
    results: list[int] = []

    with pytest.raises(TTSFailed, match="cannot say 'b'"):
        async for seq, _, _ in synthesize_in_order(tts, source.phrases(), max_pending=3):
            results.append(seq)

    assert results == [0]
    assert tts.cancelled == ["c"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_source_error_is_raised_after_its_phrases():
    tts = ScriptedTTS()
    for text in ["a", "b"]:
        tts.gate(text).set()
    source = Source(["a", "b"], error=LLMTimeout("no next token"))
    results: list[int] = []

    with pytest.raises(LLMTimeout):
        async for seq, _, _ in synthesize_in_order(tts, source.phrases(), max_pending=5):
            results.append(seq)

    assert results == [0, 1]


async def test_max_pending_must_be_positive():
    with pytest.raises(ValueError):
        await anext(synthesize_in_order(ScriptedTTS(), Source([]).phrases(), max_pending=0))
