"""One assistant reply: LLM tokens → phrases → ordered TTS audio, as an interruptible object.

:class:`ReplyHandle` is the interruption object (STYLE.md §9): it owns the task
that generates the reply, records every phrase sent with its audio duration,
and can say how much of the reply the user has heard at any instant — from the
server's playback estimate, or exactly from the client's playback report.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from streaming.config import StreamConfig
from streaming.errors import StreamError
from streaming.events import Event, LLMToken, TTSAudio, TTSComplete, TTSPhraseDone
from streaming.llm import ChatMessage, LLMEngine, stream_reply
from streaming.metrics import TurnClock
from streaming.phrases import PhraseAggregator
from streaming.tts import TTSEngine, synthesize_in_order, wav_duration

Emit = Callable[[Event], Awaitable[None]]


class ReplyState(enum.Enum):
    GENERATING = "generating"
    PLAYING = "playing"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    FAILED = "failed"


_ENDED = {ReplyState.COMPLETED, ReplyState.INTERRUPTED, ReplyState.CANCELLED, ReplyState.FAILED}


class IllegalTransition(RuntimeError):
    """A reply was moved to a state it cannot reach from its current one."""


@dataclass
class SpokenPhrase:
    """A phrase whose audio was sent, with when the client should play it."""

    seq: int
    text: str
    duration_s: float
    play_start: float
    play_end: float


@dataclass
class ReplyHandle:
    """A reply in flight; ``interrupt()`` stops it and ``heard_text()`` says what was heard."""

    turn_id: str
    user_text: str
    clock: TurnClock
    state: ReplyState = ReplyState.GENERATING
    generated: list[str] = field(default_factory=list)
    phrases: list[SpokenPhrase] = field(default_factory=list)
    error: StreamError | None = None
    task: asyncio.Task | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def generated_text(self) -> str:
        return "".join(self.generated).strip()

    @property
    def sent_text(self) -> str:
        return " ".join(p.text for p in self.phrases)

    @property
    def playback_end(self) -> float:
        return self.phrases[-1].play_end if self.phrases else 0.0

    @property
    def ended(self) -> bool:
        return self.state in _ENDED

    def audible(self, now: float | None = None) -> bool:
        """True while the reply is generating or its audio is probably still playing."""
        now = time.monotonic() if now is None else now
        return self.state == ReplyState.GENERATING or (
            self.state == ReplyState.PLAYING and now < self.playback_end
        )

    def move_to(self, state: ReplyState) -> None:
        if self.ended:
            raise IllegalTransition(
                f"reply {self.turn_id} is {self.state.value}, cannot become {state.value}"
            )
        self.state = state
        if self.ended:
            self.stopped.set()

    def add_phrase(self, seq: int, text: str, duration_s: float, sent_at: float) -> None:
        """Record a sent phrase; the client plays phrases back to back in ``seq`` order."""
        start = max(sent_at, self.playback_end)
        self.phrases.append(SpokenPhrase(seq, text, duration_s, start, start + duration_s))

    def heard_text(self, now: float | None = None) -> str:
        """The server's estimate of what the user has heard by ``now``."""
        now = time.monotonic() if now is None else now
        parts = []
        for phrase in self.phrases:
            if now >= phrase.play_end:
                parts.append(phrase.text)
            elif now > phrase.play_start and phrase.duration_s > 0:
                parts.append(_leading_words(phrase.text, (now - phrase.play_start) / phrase.duration_s))
                break
            else:
                break
        return " ".join(p for p in parts if p)

    def heard_text_from_report(self, seq: int, played_s: float) -> str:
        """What was heard per the client: phrases before ``seq`` and ``played_s`` of phrase ``seq``."""
        parts = []
        for phrase in self.phrases:
            if phrase.seq < seq:
                parts.append(phrase.text)
            elif phrase.seq == seq:
                fraction = played_s / phrase.duration_s if phrase.duration_s > 0 else 1.0
                parts.append(_leading_words(phrase.text, fraction))
        return " ".join(p for p in parts if p)


def _leading_words(text: str, fraction: float) -> str:
    words = text.split()
    count = int(len(words) * min(max(fraction, 0.0), 1.0))
    return " ".join(words[:count])


async def generate_reply(
    handle: ReplyHandle,
    messages: list[ChatMessage],
    *,
    llm: LLMEngine,
    tts: TTSEngine,
    config: StreamConfig,
    emit: Emit,
    on_tts_error: Callable[[StreamError], Awaitable[None]],
) -> None:
    """Stream the reply to ``emit``: tokens as they come, then phrase audio in order.

    A phrase whose synthesis fails is reported through ``on_tts_error`` and
    skipped; the reply goes on.  LLM failures raise their :class:`StreamError`.
    """
    turn_id = handle.turn_id
    aggregator = PhraseAggregator(config.tts_max_phrase_length)

    async def phrases() -> AsyncIterator[str]:
        tokens = stream_reply(
            llm,
            messages,
            token_timeout_s=config.llm_token_timeout_s,
            first_token_timeout_s=config.llm_first_token_timeout_s,
            overall_timeout_s=config.llm_timeout_s,
        )
        try:
            async for token in tokens:
                if not token:
                    continue
                handle.clock.mark("t3")
                handle.generated.append(token)
                await emit(LLMToken(turn_id, token))
                for phrase in aggregator.push(token):
                    yield phrase
        finally:
            await tokens.aclose()
        await emit(LLMToken(turn_id, "", done=True))
        rest = aggregator.flush()
        if rest:
            yield rest

    tolerant = _SkipFailedPhrases(tts, on_tts_error)
    seq = 0
    ordered = synthesize_in_order(tolerant, phrases(), max_pending=config.max_pending_phrases)
    async with contextlib.aclosing(ordered):  # a cancel stops pending synthesis at once
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


class _SkipFailedPhrases:
    """A TTS adapter that reports a failed phrase and yields no audio for it."""

    def __init__(self, tts: TTSEngine, on_error: Callable[[StreamError], Awaitable[None]]) -> None:
        self._tts = tts
        self._on_error = on_error
        self.name = tts.name

    async def synthesize(self, text: str) -> bytes:
        try:
            return await self._tts.synthesize(text)
        except StreamError as exc:
            await self._on_error(exc)
            return b""

    async def aclose(self) -> None:
        """The wrapped engine is shared by the process; it is not closed here."""
