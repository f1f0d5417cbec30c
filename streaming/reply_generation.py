"""One reply's generation: LLM tokens → phrases → ordered TTS audio, streamed as events.

:func:`generate_reply` is the work a :class:`~streaming.reply.ReplyHandle` runs in
the task it owns: tokens are emitted as they come, cut into phrases, and each
phrase's audio is emitted in order and recorded on the handle (so it can tell
what was heard).  Cancelling the task stops the LLM stream and pending synthesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from streaming.aio import discard_result
from streaming.config import StreamConfig
from streaming.errors import StreamError
from streaming.events import Emit, LLMToken, TTSAudio, TTSComplete, TTSPhraseDone
from streaming.llm import ChatMessage, LLMEngine, stream_reply
from streaming.phrases import PhraseAggregator
from streaming.tts import TTSEngine, synthesize_in_order, wav_duration

if TYPE_CHECKING:
    from streaming.reply import ReplyHandle


async def generate_reply(
    handle: ReplyHandle,
    messages: list[ChatMessage],
    *,
    llm: LLMEngine,
    tts: TTSEngine,
    config: StreamConfig,
    emit: Emit,
    on_tts_error: Callable[[StreamError], Awaitable[None]],
    tokens: AsyncIterator[str] | None = None,
    held_phrase: tuple[str, asyncio.Task[bytes]] | None = None,
) -> None:
    """Stream the reply to ``emit``: tokens as they come, then phrase audio in order.

    ``tokens`` replaces the LLM request (a speculation's stream, already asked
    ``messages``), and ``held_phrase`` its first phrase's synthesis, used if the reply's
    first phrase is that text.  A phrase whose synthesis fails is reported through
    ``on_tts_error`` and skipped; the reply goes on.  LLM failures raise their
    :class:`StreamError`.
    """
    turn_id = handle.turn_id
    aggregator = PhraseAggregator(config.tts_max_phrase_length)

    async def phrases() -> AsyncIterator[str]:
        stream = tokens or stream_reply(
            llm,
            messages,
            token_timeout_s=config.llm_token_timeout_s,
            first_token_timeout_s=config.llm_first_token_timeout_s,
            overall_timeout_s=config.llm_timeout_s,
        )
        try:
            async for token in stream:
                if not token:
                    continue
                handle.clock.mark("t3")
                handle.generated.append(token)
                await emit(LLMToken(turn_id, token))
                for phrase in aggregator.push(token):
                    yield phrase
        finally:
            await stream.aclose()
        await emit(LLMToken(turn_id, "", done=True))
        rest = aggregator.flush()
        if rest:
            yield rest

    voice = _HeldFirstPhrase(tts, held_phrase)
    tolerant = _SkipFailedPhrases(voice, on_tts_error)
    seq = 0
    ordered = synthesize_in_order(tolerant, phrases(), max_pending=config.max_pending_phrases)
    async with contextlib.aclosing(ordered), voice:  # a cancel stops pending synthesis at once
        async for _, text, wav in ordered:
            if not wav:
                continue
            now = time.monotonic()
            handle.clock.mark("t4", now)
            duration = wav_duration(wav)
            handle.add_phrase(seq, text, duration, now)
            await emit(TTSAudio(turn_id, seq, wav, text, duration))
            await emit(TTSPhraseDone(turn_id, seq))
            seq += 1
    await emit(TTSComplete(turn_id))


class _HeldFirstPhrase:
    """A TTS adapter that answers the reply's first phrase with audio synthesized during the pause.

    Used as a context manager: a held synthesis the reply did not use is cancelled on exit.
    """

    def __init__(self, tts: TTSEngine, held: tuple[str, asyncio.Task[bytes]] | None) -> None:
        self._tts = tts
        self._held = held
        self.name = tts.name

    async def synthesize(self, text: str, *, seq: int = 0) -> bytes:
        held, self._held = self._held, None
        if held is not None and seq == 0 and held[0] == text:
            return await held[1]
        if held is not None:
            await discard_result(held[1])
        return await self._tts.synthesize(text, seq=seq)

    async def __aenter__(self) -> _HeldFirstPhrase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._held is not None:
            await discard_result(self._held[1])
            self._held = None


class _SkipFailedPhrases:
    """A TTS adapter that reports a failed phrase and yields no audio for it."""

    def __init__(self, tts: TTSEngine, on_error: Callable[[StreamError], Awaitable[None]]) -> None:
        self._tts = tts
        self._on_error = on_error
        self.name = tts.name

    async def synthesize(self, text: str, *, seq: int = 0) -> bytes:
        try:
            return await self._tts.synthesize(text, seq=seq)
        except StreamError as exc:
            await self._on_error(exc)
            return b""

    async def aclose(self) -> None:
        """The wrapped engine is shared by the process; it is not closed here."""
