"""VoiceSession: one connection's pipeline, from PCM frames to reply audio.

Three tasks, each owned by the session, connected by queues:

* input — decodes PCM, runs the VAD, schedules partials and speculative finals;
  it only ever does cheap work, so audio is never delayed by a model;
* turns — turns each ended utterance into its final transcript, in order;
  at most ``STREAM_MAX_PENDING_UTTERANCES`` wait for it, else input waits, its
  bounded inbox fills and further audio is refused (``AUDIO_TOO_FAST``), so one
  client cannot queue unbounded work or memory however fast it sends;
* replies — answers each turn (LLM → phrases → TTS) one at a time.

The caller pushes audio and commands; everything the session does comes out as
typed events through the ``emit`` coroutine.  The session knows nothing of
Django or WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from streaming.aio import TaskSet, cancel_and_wait
from streaming.asr import ASREngine, Transcription
from streaming.audio import SAMPLE_RATE, PcmDecoder
from streaming.config import StreamConfig
from streaming.errors import NotStarted, StreamError, TextTooFast
from streaming.events import (
    ErrorEvent,
    Event,
    FinalTranscript,
    Info,
    Interrupted,
    PartialTranscript,
    SpeechStarted,
    SpeechStopped,
    TurnFinished,
    TurnMetrics,
)
from streaming.inbox import AudioGap, SessionInbox
from streaming.llm import LLMEngine
from streaming.memory import ConversationMemory
from streaming.metrics import TurnClock, log_turn
from streaming.rate_limit import TYPED_TURN_BURST, TYPED_TURNS_PER_S, allowance
from streaming.reply import ReplyHandle, ReplyState, generate_reply
from streaming.tts import TTSEngine
from streaming.vad import (
    SilenceStart,
    SpeechDiscarded,
    SpeechResume,
    SpeechStart,
    UtteranceEnd,
    VadEvent,
    VadSegmenter,
)

logger = logging.getLogger(__name__)

Emit = Callable[[Event], Awaitable[None]]
_RECENT_REPLIES = 8


@dataclass(frozen=True)
class Engines:
    """The process-wide engines a session uses; shared, never owned by one session."""

    asr: ASREngine
    llm: LLMEngine
    tts: TTSEngine


class SessionState(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True)
class _Start:
    sample_rate: int


@dataclass(frozen=True)
class _Stop:
    reason: str


@dataclass(frozen=True)
class _Cancel:
    pass


@dataclass
class _Utterance:
    """The utterance being spoken now."""

    turn_id: str
    clock: TurnClock
    partial_task: asyncio.Task | None = None
    last_partial_at: float = 0.0
    last_partial_end: int = -1
    last_partial_text: str = ""
    speculative: asyncio.Task | None = None
    speculative_end: int = -1
    silent: bool = False


@dataclass
class _PendingTurn:
    """An ended utterance (or typed text) waiting for its final transcript."""

    turn_id: str
    clock: TurnClock
    source: str
    audio: np.ndarray | None = None
    text: str | None = None
    speculative: asyncio.Task | None = None
    epoch: int = 0


@dataclass(frozen=True)
class _Answer:
    turn_id: str
    user_text: str
    clock: TurnClock
    epoch: int


class VoiceSession:
    """One conversation's streaming pipeline; see the module docstring."""

    def __init__(
        self,
        config: StreamConfig,
        engines: Engines,
        emit: Emit,
        *,
        memory: ConversationMemory,
        conversation_id: str | None = None,
    ) -> None:
        self.config = config
        self.engines = engines
        self.memory = memory
        self.conversation_id = conversation_id
        self._emit = emit
        self.state = SessionState.IDLE
        self._inbox: SessionInbox[_Start | _Stop | _Cancel | None] = SessionInbox(
            max_speed=config.audio_max_speed, burst_s=config.audio_burst_s
        )
        self._turns: asyncio.Queue[_PendingTurn | None] = asyncio.Queue()
        self._utterance_slots = asyncio.Semaphore(config.max_pending_utterances)
        self._typed_turns = allowance(TYPED_TURNS_PER_S, TYPED_TURN_BURST)
        self.asr_owner = uuid.uuid4().hex
        """This session's key in the shared ASR engine, which serves its finals in turn with others'."""
        self._answers: asyncio.Queue[_Answer | None] = asyncio.Queue()
        self._decoder: PcmDecoder | None = None
        self._vad = VadSegmenter.from_config(config)
        self._utt: _Utterance | None = None
        self._cancel_epoch = 0
        self._samples_in = 0
        self._arrival_time = time.monotonic()
        self._reply: ReplyHandle | None = None
        self._recent: OrderedDict[str, ReplyHandle] = OrderedDict()
        self._closing_reason = ""
        self._tasks = TaskSet()
        self._workers: list[asyncio.Task] = []

    # -- commands -------------------------------------------------------------------------

    def open(self) -> None:
        """Start the session's worker tasks (call once, inside the event loop)."""
        self._workers = [
            self._tasks.create(self._input_loop(), name="session-input"),
            self._tasks.create(self._turn_loop(), name="session-turns"),
            self._tasks.create(self._answer_loop(), name="session-replies"),
        ]

    def start(self, sample_rate: int) -> None:
        """Begin (or restart) audio input at ``sample_rate``; raises UnsupportedSampleRate."""
        PcmDecoder(sample_rate)
        self.state = SessionState.LISTENING
        self._inbox.start_stream(sample_rate)
        self._inbox.put(_Start(sample_rate))

    def push_audio(self, data: bytes) -> None:
        """Queue PCM bytes within the session's audio bounds; never blocks.

        Raises NotStarted before start, and AudioTooFast (after queueing what fits) when
        audio comes faster than ``STREAM_AUDIO_MAX_SPEED`` or the inbox is full; the utterance
        in progress then ends where audio was dropped (``speech_stopped`` reason ``audio_dropped``).
        """
        if self.state != SessionState.LISTENING:
            raise NotStarted('Send {"type": "start", "sample_rate": ...} before audio.')
        self._inbox.put_audio(data)

    @property
    def audio_held_bytes(self) -> int:
        """Memory taken by audio received but not yet processed (at most ``STREAM_AUDIO_BURST_S`` of it)."""
        return self._inbox.held_bytes

    def stop(self) -> None:
        """End audio input: the utterance in progress is finalized now and answered."""
        if self.state != SessionState.LISTENING:
            raise NotStarted("No audio input to stop: send start first.")
        self.state = SessionState.IDLE
        self._inbox.put(_Stop("stop"))

    async def cancel(self) -> None:
        """Drop the utterance in progress and the reply in flight."""
        self._inbox.put(_Cancel())
        # Turns already transcribing keep their transcript but get no reply.
        self._cancel_epoch += 1
        await self._interrupt("cancel")

    async def submit_text(self, text: str) -> str:
        """A typed user message: becomes a turn like a final transcript. Returns its turn id.

        Raises TextTooFast beyond :data:`~streaming.rate_limit.TYPED_TURNS_PER_S` (with a
        burst of :data:`~streaming.rate_limit.TYPED_TURN_BURST`): each one is a stored turn.
        """
        if not self._typed_turns.take():
            raise TextTooFast(
                f"Typed messages are limited to {TYPED_TURN_BURST} at once and then one every "
                f"{1 / TYPED_TURNS_PER_S:g} s; this one was not taken."
            )
        await self._interrupt("barge_in")
        turn_id = str(uuid.uuid4())
        clock = TurnClock(turn_id)
        now = time.monotonic()
        clock.mark("speech_end", now)
        self._turns.put_nowait(
            _PendingTurn(turn_id, clock, "text", text=text.strip(), epoch=self._cancel_epoch)
        )
        return turn_id

    def heard_text(self, turn_id: str, seq: int, played_s: float) -> str | None:
        """Apply a client playback report: the text heard of reply ``turn_id``, or None if unknown."""
        handle = self._recent.get(turn_id)
        if handle is None:
            return None
        return handle.heard_text_from_report(seq, played_s)

    async def aclose(self, reason: str = "closed") -> None:
        """Finish: finalize and emit the utterance in progress, stop replies, end every task."""
        if self.state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        self.state = SessionState.CLOSING
        self._closing_reason = reason
        await self._interrupt("cancel")
        self._inbox.put(None)
        input_task, turn_task, answer_task = self._workers
        # Everything already received is still transcribed and stored, bounded by the ASR timeout.
        budget = self.config.asr_timeout_s + 5
        await asyncio.wait([input_task], timeout=budget)
        self._turns.put_nowait(None)
        await asyncio.wait([turn_task], timeout=budget)
        self._answers.put_nowait(None)
        await asyncio.wait([answer_task], timeout=5)
        await self._tasks.aclose()
        self.state = SessionState.CLOSED

    # -- input ----------------------------------------------------------------------------

    async def _input_loop(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if item is None:
                    await self._end_input("disconnect")
                    return
                if isinstance(item, bytes):
                    await self._on_audio(item)
                elif isinstance(item, AudioGap):
                    await self._end_input("audio_dropped")  # never splice audio across a gap
                elif isinstance(item, _Start):
                    await self._end_input("restart")
                    self._decoder = PcmDecoder(item.sample_rate)
                elif isinstance(item, _Stop):
                    await self._end_input(item.reason)
                    self._decoder = None
                else:
                    self._vad.flush("cancel")  # ends the VAD's utterance; the audio is dropped
                    await self._drop_utterance("cancelled")
            except StreamError as exc:
                await self._report(exc, self._utt.turn_id if self._utt else None)
            except Exception:
                logger.exception("audio input failed", extra={"conversation_id": self.conversation_id})
                await self._emit(ErrorEvent("INTERNAL_ERROR", "Audio processing failed.", True))

    async def _on_audio(self, data: bytes) -> None:
        if self._decoder is None:
            return
        samples = self._decoder.feed(data)
        await self._on_samples(samples)
        self._maybe_partial()

    async def _on_samples(self, samples: np.ndarray) -> None:
        if not len(samples):
            return
        self._samples_in += len(samples)
        self._arrival_time = time.monotonic()
        for event in self._vad.feed(samples):
            await self._on_vad(event)
        await self._maybe_barge_in()

    def _time_of(self, sample: int) -> float:
        """The monotonic instant sample ``sample`` arrived, assuming a real-time sender."""
        return self._arrival_time - (self._samples_in - sample) / SAMPLE_RATE

    async def _on_vad(self, event: VadEvent) -> None:
        if isinstance(event, SpeechStart):
            await self._on_speech_start(event)
        elif isinstance(event, SilenceStart):
            self._on_silence_start(event)
        elif isinstance(event, SpeechResume):
            await self._on_speech_resume()
        elif isinstance(event, UtteranceEnd):
            await self._on_utterance_end(event)
        elif isinstance(event, SpeechDiscarded):
            await self._drop_utterance("too_short")

    async def _on_speech_start(self, event: SpeechStart) -> None:
        turn_id = str(uuid.uuid4())
        clock = TurnClock(turn_id)
        clock.mark("t0", self._time_of(event.start_sample))
        self._utt = _Utterance(turn_id, clock, last_partial_at=time.monotonic())
        await self._emit(SpeechStarted(turn_id, clock.t0 or time.monotonic()))

    async def _maybe_barge_in(self) -> None:
        """Interrupt the reply once the user has said enough to be an utterance, not a click.

        Checked on every chunk, not only at speech start: a reply to the first part of a
        split monologue starts while the user is still talking.
        """
        reply = self._reply
        if not self.config.barge_in or reply is None or self._utt is None:
            return
        if self._vad.voiced_ms >= self.config.min_speech_ms and reply.audible():
            await self._interrupt("barge_in")

    def _on_silence_start(self, event: SilenceStart) -> None:
        """Speech paused: decode the final now, so it is ready when the silence timeout ends."""
        utt = self._utt
        if utt is None:
            return
        utt.silent = True
        if not self.config.speculative_final:
            return
        if utt.last_partial_end >= event.at_sample and self.config.asr_beam_size == 1:
            return  # the last partial already covers all the speech: it will be the final
        utt.speculative_end = event.at_sample
        utt.speculative = self._tasks.create(
            self.engines.asr.transcribe_final(self._vad.utterance_audio(), owner=self.asr_owner),
            name="speculative-final",
        )

    async def _on_speech_resume(self) -> None:
        utt = self._utt
        if utt is not None:
            utt.silent = False
        if utt is not None and utt.speculative is not None:
            await cancel_and_wait(utt.speculative)
            utt.speculative = None
            utt.speculative_end = -1

    async def _on_utterance_end(self, event: UtteranceEnd) -> None:
        utt = self._utt
        self._utt = None
        if utt is None:
            return
        clock = utt.clock
        clock.mark("speech_end", self._time_of(event.speech_end_sample))
        clock.audio_s = len(event.audio) / SAMPLE_RATE
        if utt.partial_task is not None:
            await cancel_and_wait(utt.partial_task)
        speculative = utt.speculative if utt.speculative_end >= event.speech_end_sample else None
        if speculative is None and utt.speculative is not None:
            await cancel_and_wait(utt.speculative)
        if speculative is not None:
            clock.final_source = "speculative"
        pending = _PendingTurn(
            utt.turn_id, clock, "voice", audio=event.audio, speculative=speculative, epoch=self._cancel_epoch
        )
        if (
            speculative is None
            and utt.last_partial_end >= event.speech_end_sample
            and self.config.asr_beam_size == 1
            and event.reason == "silence"
        ):
            pending.text = utt.last_partial_text
            clock.final_source = "partial"
        await self._utterance_slots.acquire()  # released by the turn loop once it is finalized
        self._turns.put_nowait(pending)
        await self._emit(SpeechStopped(utt.turn_id, clock.speech_end or time.monotonic(), event.reason))

    async def _end_input(self, reason: str) -> None:
        """Finalize the utterance in progress at once (stop, restart or disconnect)."""
        if self._decoder is not None:
            await self._on_samples(self._decoder.flush())
        ended = self._vad.flush(reason)
        if ended is not None:
            await self._on_utterance_end(ended)
        elif self._utt is not None:
            await self._drop_utterance("too_short")

    async def _drop_utterance(self, reason: str) -> None:
        """Forget the utterance in progress (cancelled, or too little speech to be one)."""
        utt = self._utt
        self._utt = None
        if utt is not None:
            await cancel_and_wait(utt.partial_task, utt.speculative)
            await self._emit(SpeechStopped(utt.turn_id, time.monotonic(), reason))

    def _maybe_partial(self) -> None:
        """Schedule a partial if one is due; skip it under backpressure or while one runs."""
        utt = self._utt
        if utt is None or utt.silent or utt.speculative is not None:
            return
        if utt.partial_task is not None and not utt.partial_task.done():
            return
        now = time.monotonic()
        if now - utt.last_partial_at < self.config.partial_interval_ms / 1000:
            return
        if self._inbox.qsize() >= self.config.backpressure_threshold:
            utt.last_partial_at = now  # fall behind gracefully: skip this partial, keep the audio
            return
        utt.last_partial_at = now
        audio = self._vad.utterance_audio()
        if not len(audio):
            return
        end_sample = self._samples_in
        utt.partial_task = self._tasks.create(self._run_partial(utt, audio, end_sample), name="partial")

    async def _run_partial(self, utt: _Utterance, audio: np.ndarray, end_sample: int) -> None:
        try:
            result = await self.engines.asr.transcribe_partial(audio, owner=self.asr_owner)
        except StreamError as exc:
            if exc.code == "MODEL_LOAD_FAILED":
                return  # reported once per utterance by the final
            await self._report(exc, utt.turn_id)
            return
        if result is None or not result.text or self._utt is not utt:
            return
        utt.clock.mark("t1")
        utt.clock.partials += 1
        utt.last_partial_text = result.text
        utt.last_partial_end = end_sample
        await self._emit(PartialTranscript(utt.turn_id, result.text))

    # -- turns ----------------------------------------------------------------------------

    async def _turn_loop(self) -> None:
        while True:
            pending = await self._turns.get()
            if pending is None:
                return
            try:
                await self._finalize(pending)
            except Exception:
                logger.exception("final transcription failed", extra={"turn_id": pending.turn_id})
                await self._emit(ErrorEvent("ASR_FAILED", "Transcription failed.", True, pending.turn_id))
            finally:
                if pending.source == "voice":
                    self._utterance_slots.release()

    async def _finalize(self, pending: _PendingTurn) -> None:
        clock = pending.clock
        text = pending.text
        if text is None:
            try:
                result = await self._transcribe(pending)
            except StreamError as exc:
                await self._report(exc, pending.turn_id)
                return
            text = result.text
            clock.asr_compute_s = result.compute_s
        if not text:
            await self._emit(Info("No speech recognised.", pending.turn_id))
            return
        clock.mark("t2")
        audio_s = clock.audio_s or 0.0
        await self._emit(FinalTranscript(pending.turn_id, text, audio_s, pending.source))
        self._answers.put_nowait(_Answer(pending.turn_id, text, clock, pending.epoch))

    async def _transcribe(self, pending: _PendingTurn) -> Transcription:
        speculative = pending.speculative
        if speculative is not None:
            await asyncio.wait([speculative])
            if not speculative.cancelled():
                return speculative.result()
            pending.clock.final_source = "decoded"
        assert pending.audio is not None
        return await self.engines.asr.transcribe_final(pending.audio, owner=self.asr_owner)

    # -- replies --------------------------------------------------------------------------

    async def _answer_loop(self) -> None:
        while True:
            answer = await self._answers.get()
            if answer is None:
                return
            try:
                await self._answer(answer)
            except Exception:
                logger.exception("reply failed", extra={"turn_id": answer.turn_id})
                await self._emit(ErrorEvent("INTERNAL_ERROR", "The reply failed.", True, answer.turn_id))

    async def _answer(self, answer: _Answer) -> None:
        handle = ReplyHandle(answer.turn_id, answer.user_text, answer.clock)
        closing = self.state in (SessionState.CLOSING, SessionState.CLOSED)
        if closing or answer.epoch != self._cancel_epoch:
            handle.move_to(ReplyState.CANCELLED)
            await self._finish(handle)
            return
        self._reply = handle
        self._recent[handle.turn_id] = handle
        while len(self._recent) > _RECENT_REPLIES:
            self._recent.popitem(last=False)
        messages = self.memory.messages_for(answer.user_text)
        handle.task = self._tasks.create(self._generate(handle, messages), name="reply")
        await asyncio.wait([handle.task])
        if handle.state == ReplyState.GENERATING:  # cancelled from outside, e.g. on close
            handle.move_to(ReplyState.CANCELLED)
        if handle.state == ReplyState.PLAYING:
            await self._emit(TurnMetrics(handle.turn_id, handle.clock.report()))
            # With barge-in the reply counts as heard once its audio has had time to play, so speech
            # over its last phrases still interrupts it; the next reply also waits for it to end.
            remaining = handle.playback_end - time.monotonic()
            if self.config.barge_in and remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(handle.stopped.wait(), remaining)
            if handle.state == ReplyState.PLAYING:
                handle.move_to(ReplyState.COMPLETED)
                self.memory.commit(handle.user_text, handle.generated_text)
        else:
            await self._emit(TurnMetrics(handle.turn_id, handle.clock.report()))
        if handle.state == ReplyState.INTERRUPTED:
            # The user spoke over it: what they asked and what they heard are both context for
            # what they say next (often a correction or the rest of the question).
            self.memory.commit(handle.user_text, handle.heard_text())
        if self._reply is handle:
            self._reply = None
        await self._finish(handle)

    async def _generate(self, handle: ReplyHandle, messages: list) -> None:
        async def tts_error(exc: StreamError) -> None:
            await self._report(exc, handle.turn_id)

        try:
            await generate_reply(
                handle,
                messages,
                llm=self.engines.llm,
                tts=self.engines.tts,
                config=self.config,
                emit=self._emit,
                on_tts_error=tts_error,
            )
        except StreamError as exc:
            handle.error = exc
            if not handle.ended:
                handle.move_to(ReplyState.FAILED)
            await self._report(exc, handle.turn_id)
            return
        if not handle.ended:
            handle.move_to(ReplyState.PLAYING)

    async def _interrupt(self, reason: str) -> None:
        """Stop the audible reply: close the LLM stream, drop pending TTS, tell the client."""
        handle = self._reply
        if handle is None or handle.ended or not handle.audible():
            return
        heard = handle.heard_text()
        handle.move_to(ReplyState.INTERRUPTED if reason == "barge_in" else ReplyState.CANCELLED)
        if handle.task is not None:
            await cancel_and_wait(handle.task)
        await self._emit(Interrupted(handle.turn_id, reason, heard))

    async def _finish(self, handle: ReplyHandle) -> None:
        status = handle.state.value
        if handle.state == ReplyState.COMPLETED:
            text = handle.generated_text
        elif handle.state in (ReplyState.INTERRUPTED, ReplyState.CANCELLED):
            text = handle.heard_text()
        else:
            text = handle.sent_text
        await self._emit(TurnFinished(handle.turn_id, status, handle.user_text, text, handle.generated_text))
        log_turn(self.conversation_id, handle.turn_id, status, handle.clock.report())

    async def _report(self, exc: StreamError, turn_id: str | None) -> None:
        await self._emit(ErrorEvent(exc.code, exc.message, exc.recoverable, turn_id))
