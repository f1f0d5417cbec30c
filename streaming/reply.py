"""The reply stage: each final transcript is answered in turn, as a :class:`ReplyHandle`.

:class:`ReplyStage` answers one turn at a time, so replies never overlap; with
barge-in on, a reply also counts as playing until its audio has had time to play, so
speech over its last phrases still interrupts it and the next reply waits for it.  It
also holds the turn's speculation, if one was started at the pause
(:mod:`streaming.speculation`), and hands it to the reply that can use it.

:class:`~streaming.reply_handle.ReplyHandle`, the interruption object, lives in
:mod:`streaming.reply_handle`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable

from streaming.config import StreamConfig
from streaming.events import Emit, ErrorEvent, Interrupted, TurnFinished, TurnMetrics
from streaming.llm import ChatMessage, LLMEngine, stream_reply
from streaming.memory import ConversationMemory
from streaming.metrics import log_turn
from streaming.phrases import PhraseAggregator
from streaming.reply_handle import ReplyHandle, ReplyState
from streaming.speculation import Speculation
from streaming.tts import TTSEngine, hold_voice, release_voice
from streaming.turns import Answer

logger = logging.getLogger(__name__)

__all__ = ["RECENT_REPLIES", "ReplyHandle", "ReplyStage", "ReplyState"]

RECENT_REPLIES = 8
"""Replies a session keeps for the client's playback reports (the last few are all it sends)."""


class ReplyStage:
    """Answers the final transcripts queued on ``answers`` one at a time; see the module docstring.

    ``should_answer`` says whether a transcript still gets a reply when its turn comes
    (not after a cancel, not while the session closes); one that does not is finished
    as cancelled.
    """

    def __init__(
        self,
        config: StreamConfig,
        llm: LLMEngine,
        tts: TTSEngine,
        *,
        memory: ConversationMemory,
        emit: Emit,
        should_answer: Callable[[Answer], bool],
        conversation_id: str | None = None,
    ) -> None:
        self._config = config
        self._llm = llm
        self._tts = tts
        self._memory = memory
        self._emit = emit
        self._should_answer = should_answer
        self._conversation_id = conversation_id
        self.current: ReplyHandle | None = None
        """The reply being generated or played, if any."""
        self._recent: OrderedDict[str, ReplyHandle] = OrderedDict()
        self._interruption_sent: dict[str, asyncio.Event] = {}
        self._speculation: Speculation | None = None
        self._reply_barge_in = config.barge_in

    def configure(self, config: StreamConfig, *, llm: LLMEngine, tts: TTSEngine) -> None:
        """Use ``config``, ``llm`` and ``tts`` from the next reply on; the reply in flight keeps
        the settings it began with."""
        self._config, self._llm, self._tts = config, llm, tts

    @property
    def barge_in(self) -> bool:
        """Whether the user's speech interrupts the reply in flight: the setting it began with."""
        return self._reply_barge_in

    async def run(self, answers: asyncio.Queue[Answer | None]) -> None:
        """Answer queued transcripts in order until ``None`` arrives."""
        while True:
            answer = await answers.get()
            if answer is None:
                await self.drop_speculation()
                return
            try:
                await self._answer(answer)
            except Exception:
                logger.exception("reply failed", extra={"turn_id": answer.turn_id})
                await self._emit(ErrorEvent("INTERNAL_ERROR", "The reply failed.", True, answer.turn_id))

    async def speculate(self, turn_id: str, user_text: str) -> None:
        """Start the LLM on ``user_text``, the speculative final of turn ``turn_id`` at a pause
        (see :mod:`streaming.speculation`), unless a reply is in flight: its end would change
        the conversation the speculation reads."""
        await self.drop_speculation()
        if self.current is not None:
            return
        messages = self._memory.messages_for(user_text)
        stream = stream_reply(
            self._llm,
            messages,
            token_timeout_s=self._config.llm_token_timeout_s,
            first_token_timeout_s=self._config.llm_first_token_timeout_s,
            overall_timeout_s=self._config.llm_timeout_s,
        )
        self._speculation = Speculation(
            turn_id,
            messages,
            stream,
            tts=self._tts,
            phrases=PhraseAggregator(self._config.tts_max_phrase_length),
        )

    async def drop_speculation(self, turn_id: str | None = None) -> None:
        """Discard the speculation (only if it is turn ``turn_id``'s, when given)."""
        speculation = self._speculation
        if speculation is not None and turn_id in (None, speculation.turn_id):
            self._speculation = None
            await speculation.discard()

    async def _adopt_speculation(
        self, turn_id: str, messages: list[ChatMessage], tts: TTSEngine
    ) -> Speculation | None:
        """The speculation answering exactly ``messages`` for ``turn_id`` in voice ``tts``; any
        other is discarded."""
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.matches(turn_id, messages, tts):
            return speculation
        if speculation is not None:
            await speculation.discard()
        return None

    async def interrupt(self, reason: str) -> None:
        """Stop the reply the user may still hear, if any, and tell the client."""
        handle = self.current
        if handle is None or not handle.audible():
            return
        sent = self._interruption_sent[handle.turn_id] = asyncio.Event()
        try:
            await handle.interrupt(reason)
            await self._emit(Interrupted(handle.turn_id, reason))
        finally:
            sent.set()

    async def _after_interruption_sent(self, handle: ReplyHandle) -> None:
        """Hold the turn's own events until the client was told it is interrupted (if it is).

        The answering task wakes as soon as the generation is cancelled, while the interrupting
        task still has to send ``interrupted``: without this wait the client could see the turn
        complete first.
        """
        sent = self._interruption_sent.get(handle.turn_id)
        if sent is not None:
            await sent.wait()

    def heard_text(self, turn_id: str, seq: int, played_s: float) -> str | None:
        """What the user heard of recent reply ``turn_id`` per a playback report; None if unknown."""
        handle = self._recent.get(turn_id)
        if handle is None:
            return None
        return handle.heard_text_from_report(seq, played_s)

    async def _answer(self, answer: Answer) -> None:
        # A user who resumes after a turn the detector ended early stops its reply (see Listener),
        # so its playback is tracked as with barge-in, whatever the settings are by now.
        track = self._config.barge_in or answer.ended_early
        handle = ReplyHandle(answer.turn_id, answer.user_text, answer.clock, track_playback=track)
        if not self._should_answer(answer):
            await self.drop_speculation()
            await handle.interrupt("cancel")
            await self._finish(handle)
            return
        self.current = handle
        self._reply_barge_in = self._config.barge_in
        tts = self._tts  # the voice it began with, kept loaded until it ends (a configure may change it)
        hold_voice(tts)
        self._recent[handle.turn_id] = handle
        while len(self._recent) > RECENT_REPLIES:
            self._recent.popitem(last=False)
        speculation = None
        try:
            messages = self._memory.messages_for(answer.user_text)
            speculation = await self._adopt_speculation(answer.turn_id, messages, tts)
            # Not if stopped (a cancel, a barge-in) while a stale speculation was discarded.
            if not handle.ended:
                handle.start(
                    messages,
                    llm=self._llm,
                    tts=tts,
                    config=self._config,
                    emit=self._emit,
                    speculation=speculation,
                )
            await handle.wait_for_generation()
            await self._after_interruption_sent(handle)
            await self._emit(TurnMetrics(handle.turn_id, handle.clock.report()))
            await handle.wait_for_playout()
            await self._after_interruption_sent(handle)
        finally:
            await handle.aclose()
            if speculation is not None:  # adopted: its LLM stream ends with this reply, however it ended
                await speculation.discard()
            release_voice(tts)
            self._interruption_sent.pop(handle.turn_id, None)
            if self.current is handle:
                self.current = None
        if handle.state is ReplyState.COMPLETED:
            self._memory.commit(handle.user_text, handle.generated_text)
        elif handle.state is ReplyState.INTERRUPTED:
            # The user spoke over it: what they asked and what they heard are both context for
            # what they say next (often a correction or the rest of the question).
            self._memory.commit(handle.user_text, handle.heard_text())
        await self._finish(handle)

    async def _finish(self, handle: ReplyHandle) -> None:
        status = handle.state.value
        await self._emit(
            TurnFinished(
                handle.turn_id, status, handle.user_text, handle.assistant_text, handle.generated_text
            )
        )
        log_turn(self._conversation_id, handle.turn_id, status, handle.clock.report())
