"""The interruption object: :class:`ReplyHandle`, one assistant reply and the only way to stop it.

Like LiveKit's ``SpeechHandle`` (STYLE.md §9), it owns the task generating its reply
(LLM → phrases → TTS, see :mod:`streaming.reply_generation`), records each phrase
sent with when the client should play it, and :meth:`ReplyHandle.interrupt` cancels
the generation, awaits the cancellation and returns what the user heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from dataclasses import dataclass

from streaming.aio import TaskSet
from streaming.config import StreamConfig
from streaming.errors import StreamError
from streaming.events import Emit, ErrorEvent
from streaming.llm import ChatMessage, LLMEngine
from streaming.metrics import TurnClock
from streaming.reply_generation import generate_reply
from streaming.speculation import Speculation
from streaming.states import Transitions
from streaming.tts import TTSEngine

logger = logging.getLogger(__name__)


class ReplyState(enum.Enum):
    GENERATING = "generating"
    PLAYING = "playing"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    FAILED = "failed"


_ENDED = (ReplyState.COMPLETED, ReplyState.INTERRUPTED, ReplyState.CANCELLED, ReplyState.FAILED)
_TRANSITIONS = Transitions(
    "reply",
    {
        ReplyState.GENERATING: {
            ReplyState.PLAYING,
            ReplyState.INTERRUPTED,
            ReplyState.CANCELLED,
            ReplyState.FAILED,
        },
        ReplyState.PLAYING: {ReplyState.COMPLETED, ReplyState.INTERRUPTED, ReplyState.CANCELLED},
        **{state: set() for state in _ENDED},
    },
)


@dataclass
class SpokenPhrase:
    """A phrase whose audio was sent, with when the client should play it."""

    seq: int
    text: str
    duration_s: float
    play_start: float
    play_end: float


class ReplyHandle:
    """One assistant reply: GENERATING, then PLAYING once all its audio is sent, then an end state.

    ``track_playback`` (barge-in on) keeps a sent reply PLAYING, hence interruptible,
    until its audio has had time to play; without it the reply completes when sent.
    """

    def __init__(self, turn_id: str, user_text: str, clock: TurnClock, *, track_playback: bool) -> None:
        self.turn_id = turn_id
        self.user_text = user_text
        self.clock = clock
        self.generated: list[str] = []
        """The LLM's tokens so far."""
        self.phrases: list[SpokenPhrase] = []
        self._track_playback = track_playback
        self._state = ReplyState.GENERATING
        self._tasks = TaskSet()
        self._generation: asyncio.Task | None = None
        self._stopped = asyncio.Event()
        self._heard_when_stopped: str | None = None

    @property
    def state(self) -> ReplyState:
        return self._state

    @property
    def ended(self) -> bool:
        return self._state in _ENDED

    @property
    def interrupted(self) -> bool:
        """True once :meth:`interrupt` stopped the reply (by barge-in or a cancel)."""
        return self._heard_when_stopped is not None

    @property
    def generated_text(self) -> str:
        return "".join(self.generated).strip()

    @property
    def assistant_text(self) -> str:
        """What history keeps of the reply: all of it if completed, what was heard if stopped,
        what was sent if it failed."""
        if self._state is ReplyState.COMPLETED:
            return self.generated_text
        if self._state in (ReplyState.INTERRUPTED, ReplyState.CANCELLED):
            return self.heard_text()
        return " ".join(p.text for p in self.phrases)

    @property
    def playback_end(self) -> float:
        """When the client should finish playing the audio sent so far (monotonic seconds)."""
        return self.phrases[-1].play_end if self.phrases else 0.0

    def audible(self, now: float | None = None) -> bool:
        """True while the reply is generating or its audio is probably still playing."""
        now = time.monotonic() if now is None else now
        return self._state is ReplyState.GENERATING or (
            self._state is ReplyState.PLAYING and now < self.playback_end
        )

    def start(
        self,
        messages: list[ChatMessage],
        *,
        llm: LLMEngine,
        tts: TTSEngine,
        config: StreamConfig,
        emit: Emit,
        speculation: Speculation | None = None,
    ) -> None:
        """Start generating the reply to ``messages`` in a task this handle owns.

        With ``speculation`` (an LLM stream started on the same messages at the pause) its
        tokens are used instead of a new request (the reply stage discards it once the reply
        has ended).  Errors are emitted as :class:`~streaming.events.ErrorEvent`: a failed
        phrase is skipped, an LLM failure ends the reply as FAILED.
        """
        if self._generation is not None or self._state is not ReplyState.GENERATING:
            raise RuntimeError(f"reply {self.turn_id} was already started or stopped")
        self.clock.reply_speculative = speculation is not None
        self._generation = self._tasks.create(
            self._generate(messages, llm=llm, tts=tts, config=config, emit=emit, speculation=speculation),
            name="reply",
        )

    async def wait_for_generation(self) -> None:
        """Wait until all the reply's audio is sent, or it failed or was stopped."""
        if self._generation is not None:
            await asyncio.wait([self._generation])
            if not self._generation.cancelled() and self._generation.exception() is not None:
                logger.error(
                    "reply generation failed",
                    exc_info=self._generation.exception(),
                    extra={"turn_id": self.turn_id},
                )
        if self._state is ReplyState.GENERATING:  # its task ended without an outcome
            self._move_to(ReplyState.CANCELLED)

    async def wait_for_playout(self) -> None:
        """Wait for the end of generation and, when playback is tracked, of the audio's playback
        (unless the reply is stopped first); a reply still PLAYING then becomes COMPLETED."""
        await self.wait_for_generation()
        remaining = self.playback_end - time.monotonic()
        if self._track_playback and self._state is ReplyState.PLAYING and remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), remaining)
        if self._state is ReplyState.PLAYING:
            self._move_to(ReplyState.COMPLETED)

    async def interrupt(self, reason: str) -> str:
        """Stop the reply now and return what the user heard of it.

        ``reason`` "barge_in" (the user spoke over it) makes it INTERRUPTED, any other
        CANCELLED.  Its generation is cancelled and the cancellation awaited, which closes
        the LLM stream and drops pending synthesis.  Raises
        :class:`~streaming.states.IllegalTransition` if the reply has already ended.
        """
        heard = self.heard_text()
        self._move_to(ReplyState.INTERRUPTED if reason == "barge_in" else ReplyState.CANCELLED)
        self._heard_when_stopped = heard
        await self._tasks.aclose()
        return heard

    async def aclose(self) -> None:
        """Cancel the generation if it still runs (and wait for it): a reply never outlives its owner."""
        await self._tasks.aclose()

    def add_phrase(self, seq: int, text: str, duration_s: float, sent_at: float) -> None:
        """Record a sent phrase; the client plays phrases back to back in ``seq`` order."""
        start = max(sent_at, self.playback_end)
        self.phrases.append(SpokenPhrase(seq, text, duration_s, start, start + duration_s))

    def heard_text(self, now: float | None = None) -> str:
        """The server's estimate of what the user has heard by ``now``; fixed once interrupted."""
        if self._heard_when_stopped is not None:
            return self._heard_when_stopped
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

    def _move_to(self, state: ReplyState) -> None:
        self._state = _TRANSITIONS.check(self._state, state)
        if self.ended:
            self._stopped.set()

    async def _generate(
        self,
        messages: list[ChatMessage],
        *,
        llm: LLMEngine,
        tts: TTSEngine,
        config: StreamConfig,
        emit: Emit,
        speculation: Speculation | None,
    ) -> None:
        async def report(exc: StreamError) -> None:
            await emit(ErrorEvent.from_error(exc, self.turn_id))

        tokens, held_phrase = speculation.adopt() if speculation is not None else (None, None)
        try:
            await generate_reply(
                self,
                messages,
                llm=llm,
                tts=tts,
                config=config,
                emit=emit,
                on_tts_error=report,
                tokens=tokens,
                held_phrase=held_phrase,
            )
        except StreamError as exc:
            if not self.ended:
                self._move_to(ReplyState.FAILED)
            await report(exc)
            return
        if not self.ended:
            self._move_to(ReplyState.PLAYING)


def _leading_words(text: str, fraction: float) -> str:
    words = text.split()
    count = int(len(words) * min(max(fraction, 0.0), 1.0))
    return " ".join(words[:count])
