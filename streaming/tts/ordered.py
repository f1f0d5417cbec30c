"""Ordered synthesis: phrases in, their audio out in the same order, several phrases at once.

The adapter that makes a one-phrase-at-a-time :class:`~streaming.tts.TTSEngine`
keep pace with a streamed reply: phrases are synthesized concurrently (each
within the engine's per-phrase timeout) and yielded in the order they were
spoken, with a bounded look-ahead that holds back the LLM stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streaming.tts import TTSEngine


async def synthesize_in_order(
    tts: TTSEngine, phrases: AsyncIterator[str], *, max_pending: int
) -> AsyncIterator[tuple[int, str, bytes]]:
    """Synthesize up to ``max_pending`` phrases at once; yield ``(seq, text, wav)`` in order.

    ``seq`` counts from 0.  At most ``max_pending`` phrases are taken from
    ``phrases`` before the oldest is yielded, which holds back the LLM stream
    feeding them.  A failed phrase raises its error after the earlier phrases
    are yielded; so does an error from ``phrases``.  When iteration ends early
    or is cancelled, pending synthesis is cancelled and awaited, and
    ``phrases`` is closed.
    """
    if max_pending < 1:
        raise ValueError("max_pending must be at least 1")
    slots = asyncio.Semaphore(max_pending)
    ready: asyncio.Queue[tuple[int, str, asyncio.Task[bytes]] | BaseException | None] = asyncio.Queue()
    synthesis: set[asyncio.Task[bytes]] = set()

    async def read_phrases() -> None:
        # One task drives ``phrases`` from start to end, so the source's own
        # context (and its HTTP stream) always lives in the same task.
        seq = 0
        try:
            while True:
                await slots.acquire()
                try:
                    text = await anext(phrases)
                except StopAsyncIteration:
                    break
                task = asyncio.create_task(tts.synthesize(text, seq=seq), name=f"tts-phrase-{seq}")
                synthesis.add(task)
                ready.put_nowait((seq, text, task))
                seq += 1
        except BaseException as exc:
            # Raised by the consumer after the earlier phrases; a cancelled
            # reader also wakes a consumer still waiting for the next phrase.
            ready.put_nowait(exc)
            if not isinstance(exc, Exception):
                raise
            return
        ready.put_nowait(None)

    reader = asyncio.create_task(read_phrases(), name="tts-phrase-reader")
    try:
        while (item := await ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            seq, text, task = item
            wav = await task
            synthesis.discard(task)
            yield seq, text, wav
            slots.release()
    finally:
        reader.cancel()
        for task in synthesis:
            task.cancel()
        await asyncio.gather(reader, *synthesis, return_exceptions=True)
        if isinstance(phrases, AsyncGenerator):
            await phrases.aclose()
