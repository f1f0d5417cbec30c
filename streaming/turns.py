"""The turn stage: each ended utterance (or typed message) becomes its final transcript, in order.

Turns are finalized one at a time, in the order they ended, so transcripts and
replies never overtake each other.  A voice turn holds one of
``STREAM_MAX_PENDING_UTTERANCES`` slots from the moment its utterance ends until
its final is decoded; with none free the input stage waits, its bounded inbox fills
and further audio is refused, so one client cannot queue unbounded ASR work or
memory however fast it sends.  A final is used as is when the input stage already
has it (a speculative decode, or a partial covering all the speech).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

import numpy as np

from streaming.asr import ASREngine, Transcription
from streaming.config import StreamConfig
from streaming.errors import StreamError
from streaming.events import Emit, ErrorEvent, FinalTranscript, Info
from streaming.metrics import TurnClock

logger = logging.getLogger(__name__)


@dataclass
class PendingTurn:
    """An ended utterance (or typed text) waiting for its final transcript.

    ``text`` is the final when it is already known; otherwise ``speculative`` (a decode
    the input stage started at the pause) or ``audio`` gives it. ``partial_text`` is the
    last partial the client was shown, kept if the final decode comes back empty.
    """

    turn_id: str
    clock: TurnClock
    source: str
    audio: np.ndarray | None = None
    text: str | None = None
    speculative: asyncio.Task | None = None
    partial_text: str = ""
    epoch: int = 0
    language: str | None = None
    """The session's language when the utterance began (None: the engine's)."""
    ended_early: bool = False
    """The turn detector ended it before the full silence: the user may resume and stop the reply."""


@dataclass(frozen=True)
class Answer:
    """A final transcript for the reply stage; ``epoch`` tells whether a cancel came after it."""

    turn_id: str
    user_text: str
    clock: TurnClock
    epoch: int
    ended_early: bool = False


class TurnStage:
    """Finalizes the turns queued on ``pending`` and queues their transcripts on ``answers``."""

    def __init__(
        self,
        config: StreamConfig,
        asr: ASREngine,
        *,
        owner: str,
        emit: Emit,
        pending: asyncio.Queue[PendingTurn | None],
        answers: asyncio.Queue[Answer | None],
    ) -> None:
        self._config = config
        self._asr = asr
        self._owner = owner
        self._emit = emit
        self._pending = pending
        self._answers = answers
        self._slots = asyncio.Semaphore(config.max_pending_utterances)
        self._epoch = 0
        self._cancels_ahead = 0

    def drop_replies(self) -> None:
        """Turns queued so far keep their transcript but get no reply (the client cancelled), and
        so do utterances that end in the audio sent before the cancel, which the input stage
        reaches later (a backlog after a network stall): until :meth:`input_reached_cancel`."""
        self._epoch += 1
        self._cancels_ahead += 1

    def input_reached_cancel(self) -> None:
        """The input stage has taken the audio sent before a cancel: utterances get replies again."""
        self._cancels_ahead -= 1

    def is_current(self, answer: Answer) -> bool:
        """False for an answer to a turn queued before the last :meth:`drop_replies`."""
        return answer.epoch == self._epoch

    async def put_utterance(self, turn: PendingTurn) -> None:
        """Queue an ended utterance, first waiting for one of the bounded slots."""
        turn.epoch = self._epoch - 1 if self._cancels_ahead else self._epoch
        await self._slots.acquire()  # released by run() once the turn is finalized
        self._pending.put_nowait(turn)

    def put_text(self, text: str) -> str:
        """Queue a typed message as a turn whose final is ``text``; returns its turn id."""
        turn_id = str(uuid.uuid4())
        clock = TurnClock(turn_id)
        clock.mark("speech_end", time.monotonic())
        self._pending.put_nowait(PendingTurn(turn_id, clock, "text", text=text.strip(), epoch=self._epoch))
        return turn_id

    async def run(self) -> None:
        """Finalize queued turns in order until ``None`` arrives."""
        while True:
            turn = await self._pending.get()
            if turn is None:
                return
            try:
                await self._finalize(turn)
            except Exception:
                logger.exception("final transcription failed", extra={"turn_id": turn.turn_id})
                await self._emit(ErrorEvent("ASR_FAILED", "Transcription failed.", True, turn.turn_id))
            finally:
                if turn.source == "voice":
                    self._slots.release()

    async def _finalize(self, turn: PendingTurn) -> None:
        clock = turn.clock
        text, language = turn.text, None
        if text is None:
            try:
                result = await self._transcribe(turn)
            except StreamError as exc:
                if not turn.partial_text:
                    await self._emit(ErrorEvent.from_error(exc, turn.turn_id))
                    return
                # A final that timed out or failed (at shutdown every session finalizes at once)
                # must not lose words the user was already shown: the last partial stands in.
                logger.warning(
                    "final failed (%s), the last partial kept", exc.code, extra={"turn_id": turn.turn_id}
                )
                result = None
            if result is not None:
                text, language = result.text, result.language
                clock.asr_compute_s = result.compute_s
            if not text and turn.partial_text:
                # Whisper can return nothing for a short utterance cut off mid-word (a disconnect, a
                # stop) though a partial of it had words: keep the words the user was shown.
                logger.info("final empty, the last partial kept", extra={"turn_id": turn.turn_id})
                text, clock.final_source = turn.partial_text, "partial"
        if not text:
            await self._emit(Info("No speech recognised.", turn.turn_id))
            return
        clock.mark("t2")
        await self._emit(FinalTranscript(turn.turn_id, text, clock.audio_s or 0.0, turn.source, language))
        self._answers.put_nowait(Answer(turn.turn_id, text, clock, turn.epoch, turn.ended_early))

    async def _transcribe(self, turn: PendingTurn) -> Transcription:
        speculative = turn.speculative
        if speculative is not None:
            await asyncio.wait([speculative])
            if not speculative.cancelled():
                return speculative.result()
            turn.clock.final_source = "decoded"
        assert turn.audio is not None
        return await self._asr.transcribe_final(turn.audio, owner=self._owner, language=turn.language)
