"""VoiceSession: one connection's pipeline, from PCM frames to reply audio.

The session wires three stages, each a task it owns, connected by queues it owns:

    push_audio/start/stop/cancel ─▶ inbox ─▶ Listener ─▶ pending ─▶ TurnStage ─▶ answers ─▶ ReplyStage
                                (listener.py)          (turns.py)            (reply.py)

* the inbox (:class:`~streaming.inbox.SessionInbox`) holds audio within a real-time
  allowance and ``STREAM_AUDIO_BURST_S`` of memory, commands always;
* the :class:`~streaming.listener.Listener` decodes, runs the VAD, schedules partials
  and speculative finals — cheap work only, so audio is never delayed by a model;
* ``pending`` holds ended utterances (at most ``STREAM_MAX_PENDING_UTTERANCES``, else
  the listener waits, the inbox fills and audio is refused with ``AUDIO_TOO_FAST``)
  and typed messages; the :class:`~streaming.turns.TurnStage` finalizes them in order;
* ``answers`` holds final transcripts; the :class:`~streaming.reply.ReplyStage`
  answers them one at a time, each as a :class:`~streaming.reply_handle.ReplyHandle`.

The caller pushes audio and commands; everything the session does comes out as
typed events through the ``emit`` coroutine.  The session knows nothing of
Django or WebSockets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid

from streaming.aio import TaskSet
from streaming.audio import PcmDecoder
from streaming.commands import CancelCommand, ConfigureCommand, StartCommand, StopCommand
from streaming.config import StreamConfig
from streaming.engines import Engines
from streaming.errors import BadSetting, MessagesTooFast, NotStarted, TextTooFast
from streaming.events import Emit
from streaming.inbox import SessionInbox
from streaming.languages import system_prompt_for
from streaming.listener import InputCommand, Listener
from streaming.memory import ConversationMemory
from streaming.rate_limit import (
    CONFIGURE_BURST,
    CONFIGURES_PER_S,
    TYPED_TURN_BURST,
    TYPED_TURNS_PER_S,
    allowance,
)
from streaming.reply import ReplyStage
from streaming.session_settings import SessionSettings
from streaming.states import Transitions
from streaming.tts import TTSEngine, VoiceLimitReached, hold_voice, release_voice
from streaming.turn_detection import TurnDetector
from streaming.turn_detection.detector import build_turn_detector
from streaming.turns import Answer, PendingTurn, TurnStage

__all__ = ["Engines", "SessionState", "VoiceSession"]

logger = logging.getLogger(__name__)


class SessionState(enum.Enum):
    """IDLE until ``start``; LISTENING takes audio until ``stop``; CLOSING, then CLOSED, for ever."""

    IDLE = "idle"
    LISTENING = "listening"
    CLOSING = "closing"
    CLOSED = "closed"


_TRANSITIONS = Transitions(
    "session",
    {
        SessionState.IDLE: {SessionState.LISTENING, SessionState.CLOSING},
        SessionState.LISTENING: {SessionState.LISTENING, SessionState.IDLE, SessionState.CLOSING},
        SessionState.CLOSING: {SessionState.CLOSED},
        SessionState.CLOSED: set(),
    },
)


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
        self.base_config = config
        """The process configuration this session started from; its bounds limit :meth:`configure`."""
        self.config = config
        """The session's own configuration: ``base_config`` with its settings (see :meth:`configure`)."""
        self.settings = SessionSettings.of(config)
        self.engines = engines
        self.tts: TTSEngine = engines.tts
        """The engine speaking this session's voice (its ``voice`` setting may choose another);
        held (:func:`~streaming.tts.hold_voice`) until the session closes or changes voice."""
        hold_voice(self.tts)
        self.memory = memory
        memory.system_prompt = system_prompt_for(config.system_prompt, config.language)
        self.conversation_id = conversation_id
        self.asr_owner = uuid.uuid4().hex
        """This session's key in the shared ASR engine, which serves its finals in turn with others'."""
        self._state = SessionState.IDLE
        self._typed_turns = allowance(TYPED_TURNS_PER_S, TYPED_TURN_BURST)
        self._configures = allowance(CONFIGURES_PER_S, CONFIGURE_BURST)
        self._inbox: SessionInbox[InputCommand] = SessionInbox(
            max_speed=config.audio_max_speed, burst_s=config.audio_burst_s
        )
        self._pending: asyncio.Queue[PendingTurn | None] = asyncio.Queue()
        self._answers: asyncio.Queue[Answer | None] = asyncio.Queue()
        self._turns = TurnStage(
            config, engines.asr, owner=self.asr_owner, emit=emit, pending=self._pending, answers=self._answers
        )
        self._replies = ReplyStage(
            config,
            engines.llm,
            engines.tts,
            memory=memory,
            emit=emit,
            should_answer=self._should_answer,
            conversation_id=conversation_id,
        )
        self._listener = Listener(
            config,
            engines.asr,
            detector=engines.turn_detector,
            owner=self.asr_owner,
            inbox=self._inbox,
            emit=emit,
            on_utterance=self._turns.put_utterance,
            on_voice=self._on_voice,
            on_pause=self._on_pause if config.speculative_reply else None,
            on_cancel=self._turns.input_reached_cancel,
            conversation_id=conversation_id,
        )
        self._tasks = TaskSet()
        self._workers: tuple[asyncio.Task, asyncio.Task, asyncio.Task] | None = None

    @property
    def state(self) -> SessionState:
        return self._state

    def open(self) -> None:
        """Start the three stages' tasks (call once, inside the event loop)."""
        self._workers = (
            self._tasks.create(self._listener.run(), name="session-input"),
            self._tasks.create(self._turns.run(), name="session-turns"),
            self._tasks.create(self._replies.run(self._answers), name="session-replies"),
        )

    def start(self, sample_rate: int) -> None:
        """Begin (or restart) audio input at ``sample_rate``; raises UnsupportedSampleRate."""
        PcmDecoder(sample_rate)
        self._move_to(SessionState.LISTENING)
        self._inbox.start_stream(sample_rate)
        self._inbox.put(StartCommand(sample_rate))

    def push_audio(self, data: bytes) -> None:
        """Queue PCM bytes within the session's audio bounds; never blocks.

        Raises NotStarted before start, and AudioTooFast (after queueing what fits) when
        audio comes faster than ``STREAM_AUDIO_MAX_SPEED`` or the inbox is full; the utterance
        in progress then ends where audio was dropped (``speech_stopped`` reason ``audio_dropped``).
        """
        if self._state is not SessionState.LISTENING:
            raise NotStarted('Send {"type": "start", "sample_rate": ...} before audio.')
        self._inbox.put_audio(data)

    @property
    def audio_held_bytes(self) -> int:
        """Memory taken by audio received but not yet processed (at most ``STREAM_AUDIO_BURST_S`` of it)."""
        return self._inbox.held_bytes

    def stop(self) -> None:
        """End audio input: the utterance in progress is finalized now and answered."""
        if self._state is not SessionState.LISTENING:
            raise NotStarted("No audio input to stop: send start first.")
        self._move_to(SessionState.IDLE)
        self._inbox.put(StopCommand())

    async def cancel(self) -> None:
        """Drop the utterance in progress and the reply in flight.

        Turns already transcribing keep their transcript but get no reply.
        """
        self._inbox.put(CancelCommand())
        self._turns.drop_replies()
        await self._replies.interrupt("cancel")

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
        await self._replies.interrupt("barge_in")
        return self._turns.put_text(text)

    def configure(self, command: ConfigureCommand) -> SessionSettings:
        """Change this session's settings from its next turn; return the settings now in effect.

        Raises :class:`~streaming.errors.BadSetting` naming the field, and then changes nothing;
        :class:`~streaming.errors.MessagesTooFast` beyond :data:`~streaming.rate_limit.CONFIGURES_PER_S`
        (with a burst of :data:`~streaming.rate_limit.CONFIGURE_BURST`), valid or not.
        An utterance or reply in progress keeps the settings it began with.
        """
        if not self._configures.take():
            raise MessagesTooFast(
                f"Settings changes are limited to {CONFIGURE_BURST} at once and then one every "
                f"{1 / CONFIGURES_PER_S:g} s; this one was not applied."
            )
        settings = self.settings.updated(command, self.base_config)
        config = settings.applied_to(self.base_config)
        tts = self._voice_for(settings, changed_voice=command.voice is not None)
        self._listener.configure(config, self._detector_for(config))
        self._replies.configure(config, llm=self.engines.llm.speaking(config.language), tts=tts)
        # Read when the next reply's messages are built.
        self.memory.system_prompt = system_prompt_for(config.system_prompt, config.language)
        hold_voice(tts)
        release_voice(self.tts)
        self.config, self.settings, self.tts = config, settings, tts
        return settings

    def _voice_for(self, settings: SessionSettings, *, changed_voice: bool) -> TTSEngine:
        """The engine speaking the session's voice setting in its language (:mod:`streaming.tts.voices`)."""
        if self.engines.voice is None:
            return self.engines.tts
        try:
            return self.engines.voice(settings.voice, settings.language)
        except VoiceLimitReached as exc:
            field = "voice" if changed_voice else "language"
            raise BadSetting(
                field,
                f"The server is already speaking with as many voices as it may ({exc}); "
                'choose one of those, or settings.voice "auto".',
            ) from None

    def _detector_for(self, config: StreamConfig) -> TurnDetector | None:
        """The process's detector for adaptive detection, or one built on its shared model."""
        if config.turn_detection != "adaptive":
            return None
        return self.engines.turn_detector or build_turn_detector(config)

    def heard_text(self, turn_id: str, seq: int, played_s: float) -> str | None:
        """Apply a client playback report: the text heard of reply ``turn_id``, or None if unknown."""
        return self._replies.heard_text(turn_id, seq, played_s)

    async def aclose(self, reason: str = "closed") -> None:
        """Finish: finalize and emit the utterance in progress, stop replies, end every task.

        ``reason`` (why the connection ends) only goes to the log: the utterance in progress
        ends as a ``disconnect`` whatever it is.
        """
        if self._state in (SessionState.CLOSING, SessionState.CLOSED):
            return
        self._move_to(SessionState.CLOSING)
        logger.debug("session closing", extra={"conversation_id": self.conversation_id, "reason": reason})
        await self._replies.interrupt("cancel")
        if self._workers is not None:
            listener, turns, replies = self._workers
            self._inbox.put(None)
            # Everything already received is still transcribed and stored, bounded by the ASR timeout.
            budget = self.config.asr_timeout_s + 5
            await asyncio.wait([listener], timeout=budget)
            self._pending.put_nowait(None)
            await asyncio.wait([turns], timeout=budget)
            self._answers.put_nowait(None)
            await asyncio.wait([replies], timeout=5)
        await self._tasks.aclose()
        await self._listener.aclose()
        await self._replies.drop_speculation()  # if the reply task had to be cancelled
        release_voice(self.tts)
        self._move_to(SessionState.CLOSED)

    def _move_to(self, state: SessionState) -> None:
        self._state = _TRANSITIONS.check(self._state, state)

    def _should_answer(self, answer: Answer) -> bool:
        """A transcript gets a reply unless the session is closing or a cancel came after it."""
        closing = self._state in (SessionState.CLOSING, SessionState.CLOSED)
        return not closing and self._turns.is_current(answer)

    async def _on_voice(self, resumes_early_end: bool) -> None:
        """The user has said enough to be speech: with barge-in on for this reply, that interrupts it.

        So does speech resuming a turn the detector ended early, barge-in or not: the user
        was not finished, and the reply to half a sentence must yield to the whole of it.
        """
        if self._replies.barge_in or resumes_early_end:
            await self._replies.interrupt("barge_in")

    async def _on_pause(self, turn_id: str, text: str | None) -> None:
        """A pause's speculative text: start the reply's LLM on it if nothing else is queued first."""
        if text is None:
            await self._replies.drop_speculation(turn_id)
        elif self._pending.empty() and self._answers.empty():
            await self._replies.speculate(turn_id, text)
