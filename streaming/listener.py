"""The input stage: PCM in, utterances out — decode, VAD, partials and speculative finals.

It takes the session's inbox in order (audio, gaps, start/stop/cancel), decodes the PCM,
runs the VAD and reports speech as it starts and stops.  While the user speaks it
schedules partial transcripts, and at a pause it starts decoding the final speculatively,
so the final is often ready when the silence timeout ends.  With adaptive turn detection
it also asks the detector, at each pause, how long this pause must last to end the turn,
and tells the VAD; there the speech is decoded already 100 ms into a pause when the ASR
workers are idle, so the pause is judged on its words at once.  Each ended utterance goes
to the turn stage.  It only ever does cheap work itself: model calls run in tasks it owns,
so incoming audio is never delayed by a model; their results take the listener's lock, so
they never interleave with a chunk of audio half processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import numpy as np

from streaming.aio import TaskSet, cancel_and_wait
from streaming.asr import ASREngine, Transcription
from streaming.audio import SAMPLE_RATE, PcmDecoder
from streaming.commands import CancelCommand, StartCommand, StopCommand
from streaming.config import StreamConfig
from streaming.errors import StreamError
from streaming.events import Emit, ErrorEvent, PartialTranscript, SpeechStarted, SpeechStopped
from streaming.inbox import AudioGap, SessionInbox
from streaming.metrics import TurnClock
from streaming.turn_detection import TurnDetector, TurnRule
from streaming.turns import PendingTurn
from streaming.utterance import Utterance, record_end, text_of
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

EARLY_DECODE_MS = 100
"""With adaptive detection, speech is decoded this far into a pause (workers idle), before its verdict."""

EARLY_DECODE_SPARE_WORKERS = 1
"""An early decode starts only if this many ASR workers stay free for other sessions' finals:
with several users talking it would delay their turns more than it speeds up its own."""

InputCommand = StartCommand | StopCommand | CancelCommand | None
"""What the session queues in the inbox beside audio; ``None`` ends the input."""


class Listener:
    """Turns the inbox's audio into utterances for ``on_utterance``; see the module docstring.

    ``on_voice`` is awaited on every chunk once the current utterance holds at least
    ``min_speech_ms`` of voiced audio (enough to be speech, not a click): the session's barge-in
    check.  Its argument says whether this utterance resumes one the detector ended early
    (within ``STREAM_TURN_MAX_SILENCE_MS``): the user was not finished, and the reply to the
    first part yields even with barge-in off.

    ``on_pause`` is awaited with a pause's speculative text once it is known (the reply
    stage may start the LLM on it), and with None when speech resumes after that pause.
    ``on_cancel`` is called when the input reaches a cancel, after the audio sent before it.
    """

    def __init__(
        self,
        config: StreamConfig,
        asr: ASREngine,
        *,
        detector: TurnDetector | None = None,
        owner: str,
        inbox: SessionInbox[InputCommand],
        emit: Emit,
        on_utterance: Callable[[PendingTurn], Awaitable[None]],
        on_voice: Callable[[bool], Awaitable[None]],
        on_pause: Callable[[str, str | None], Awaitable[None]] | None = None,
        on_cancel: Callable[[], None],
        conversation_id: str | None = None,
    ) -> None:
        self._config = config
        self._asr = asr
        self._detector = detector
        self._owner = owner
        self._inbox = inbox
        self._emit = emit
        self._on_utterance = on_utterance
        self._on_voice = on_voice
        self._on_pause = on_pause
        self._on_cancel = on_cancel
        self._conversation_id = conversation_id
        self._decoder: PcmDecoder | None = None
        self._vad = VadSegmenter.from_config(config)
        self._utt: Utterance | None = None
        self._samples_in = 0
        self._arrival_time = time.monotonic()
        self._tasks = TaskSet()
        self._lock = asyncio.Lock()
        self._early_end_at: int | None = None
        self._next: tuple[StreamConfig, TurnDetector | None] | None = None

    def configure(self, config: StreamConfig, detector: TurnDetector | None) -> None:
        """Use ``config``'s silence rule and ``detector`` from the next utterance on."""
        self._next = (config, detector)

    def _retune(self) -> None:
        """Between utterances, take the settings :meth:`configure` left; the one in progress keeps its own."""
        if self._next is not None and self._utt is None and not self._vad.in_speech:
            (self._config, self._detector), self._next = self._next, None
            self._vad.retune(self._config)

    async def run(self) -> None:
        """Take the inbox in order until ``None``, which finalizes the utterance in progress."""
        while True:
            item = await self._inbox.get()
            async with self._lock:
                if not await self._take(item):
                    return

    async def _take(self, item: bytes | AudioGap | InputCommand) -> bool:
        """Handle one inbox item; False once the input has ended."""
        try:
            self._retune()
            if item is None:
                await self._end_input("disconnect")
                return False
            if isinstance(item, bytes):
                await self._on_audio(item)
            elif isinstance(item, AudioGap):
                await self._end_input("audio_dropped")  # never splice audio across a gap
            elif isinstance(item, StartCommand):
                await self._end_input("restart")
                self._decoder = PcmDecoder(item.sample_rate)
            elif isinstance(item, StopCommand):
                await self._end_input("stop")
                self._decoder = None
            else:
                self._vad.flush("cancel")  # ends the VAD's utterance; the audio is dropped
                self._early_end_at = None  # speech after a cancel resumes nothing
                await self._drop_utterance("cancelled")
                self._on_cancel()
        except StreamError as exc:
            await self._emit(ErrorEvent.from_error(exc, self._utt.turn_id if self._utt else None))
        except Exception:
            logger.exception("audio input failed", extra={"conversation_id": self._conversation_id})
            await self._emit(ErrorEvent("INTERNAL_ERROR", "Audio processing failed.", True))
        return True

    async def aclose(self) -> None:
        """Cancel the partials and speculative finals still running (and wait for them)."""
        await self._tasks.aclose()

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
        # Checked on every chunk, not only at speech start: a reply to the first part of a
        # split monologue starts while the user is still talking.
        if self._utt is not None and self._vad.voiced_ms >= self._config.min_speech_ms:
            await self._on_voice(self._utt.resumes)

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
        self._utt = Utterance(turn_id, clock, last_partial_at=time.monotonic())
        if self._early_end_at is not None:
            gap_ms = (event.start_sample - self._early_end_at) * 1000 / SAMPLE_RATE
            self._utt.resumes = gap_ms <= self._config.turn_max_silence_ms
            self._early_end_at = None
        await self._emit(SpeechStarted(turn_id))

    def _on_silence_start(self, event: SilenceStart) -> None:
        """Speech paused: decode the final now, so it is ready when the silence timeout ends
        (unless the last partial already covers all the speech: it will be the final), and
        start what waits for its text: the detector's verdict and the speculative reply."""
        utt = self._utt
        if utt is None:
            return
        utt.silent = True
        audio = self._vad.utterance_audio()
        partial_is_final = utt.last_partial_end >= event.at_sample and self._config.asr_beam_size == 1
        if self._config.speculative_final and not partial_is_final:
            utt.speculative_end = event.at_sample
            utt.speculative = self._tasks.create(
                self._final_text(utt, audio, event.at_sample), name="speculative-final"
            )
        if self._detector is not None:
            utt.judge = self._tasks.create(self._judge(utt, event.at_sample, audio), name="end-of-turn")
        if self._on_pause is not None:
            utt.prefetch = self._tasks.create(self._announce_pause(utt), name="pause-text")

    async def _final_text(self, utt: Utterance, audio: np.ndarray, pause_at: int) -> Transcription:
        """The final of the utterance paused at ``pause_at``: a partial already decoding all of its
        speech (started early in the pause, see :meth:`_maybe_partial`) is the same greedy decode."""
        decode = utt.partial_decode
        if decode is not None and utt.partial_decode_end >= pause_at and self._config.asr_beam_size == 1:
            try:
                early = await asyncio.shield(decode)
            except asyncio.CancelledError:
                if not decode.cancelled():
                    raise  # this task was cancelled, not the partial
                early = None
            except StreamError:
                early = None
            if early is not None:
                return early
        return await self._asr.transcribe_final(audio, owner=self._owner, language=self._config.language)

    async def _announce_pause(self, utt: Utterance) -> None:
        """Tell ``on_pause`` the pause's speculative text, once decoded (if there are words)."""
        text = await text_of(utt.speculative) if utt.speculative is not None else utt.last_partial_text
        if text and self._utt is utt and utt.silent:
            await self._on_pause(utt.turn_id, text)

    async def _judge(self, utt: Utterance, pause_at: int, audio: np.ndarray) -> None:
        """Ask the detector about the pause at ``pause_at`` and let the VAD end it accordingly."""
        text = text_of(utt.speculative) if utt.speculative is not None else utt.last_partial_text
        verdict = await self._detector.judge(audio, text)
        async with self._lock:
            if self._utt is not utt or utt.judge is not asyncio.current_task():
                return  # the pause is over: speech resumed or the utterance ended meanwhile
            utt.judge = None
            utt.verdict = verdict
            # The session's own silence_ms, not the shared detector's, is the pause of an unsure turn.
            unsure = verdict.rule is TurnRule.UNSURE
            silence_ms = self._config.vad_silence_ms if unsure else verdict.silence_ms
            if (ended := self._vad.end_pause_after(pause_at, silence_ms)) is not None:
                await self._on_vad(ended)

    async def _on_speech_resume(self) -> None:
        utt = self._utt
        if utt is None:
            return
        utt.silent = False
        utt.verdict = None
        await cancel_and_wait(utt.judge, utt.prefetch)
        utt.judge = utt.prefetch = None
        if self._on_pause is not None:
            await self._on_pause(utt.turn_id, None)
        if utt.speculative is not None:
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
        reason = record_end(
            utt, event, adaptive=self._detector is not None, silence_ms=self._config.vad_silence_ms
        )
        if reason == "end_of_turn":
            self._early_end_at = event.at_sample
        await cancel_and_wait(utt.judge, utt.prefetch)  # a speculation not started by now is too late
        if utt.partial_task is not None:
            await cancel_and_wait(utt.partial_task)
        speculative = utt.speculative if utt.speculative_end >= event.speech_end_sample else None
        if speculative is None and utt.speculative is not None:
            await cancel_and_wait(utt.speculative)
        if speculative is not None:
            clock.final_source = "speculative"
        turn = PendingTurn(
            utt.turn_id,
            clock,
            "voice",
            audio=event.audio,
            speculative=speculative,
            partial_text=utt.last_partial_text,
            language=self._config.language,
            ended_early=reason == "end_of_turn",
        )
        if (
            speculative is None
            and utt.last_partial_end >= event.speech_end_sample
            and self._config.asr_beam_size == 1
            and event.reason == "silence"
        ):
            turn.text = utt.last_partial_text
            clock.final_source = "partial"
        await self._on_utterance(turn)
        await self._emit(SpeechStopped(utt.turn_id, reason))

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
            await cancel_and_wait(utt.partial_task, utt.speculative, utt.judge, utt.prefetch)
            if self._on_pause is not None:
                await self._on_pause(utt.turn_id, None)
            await self._emit(SpeechStopped(utt.turn_id, reason))

    def _maybe_partial(self) -> None:
        """Schedule a partial if one is due; skip it under backpressure or while one runs.

        With adaptive detection a partial is also due as soon as speech pauses
        (``EARLY_DECODE_MS``): if the workers are idle, the final is then decoding before the
        pause is judged (:meth:`_final_text`), so a complete turn ends after the shortest
        silence instead of after the pause plus a decode.
        """
        utt = self._utt
        if utt is None or utt.silent or utt.speculative is not None:
            return
        if utt.partial_task is not None and not utt.partial_task.done():
            return
        now = time.monotonic()
        paused_at = self._vad.paused_at if self._detector is not None else None
        early = (
            paused_at is not None
            and utt.partial_decode_end < paused_at
            and self._vad.position - paused_at >= EARLY_DECODE_MS * SAMPLE_RATE // 1000
        )
        if not early and now - utt.last_partial_at < self._config.partial_interval_ms / 1000:
            return
        if self._inbox.qsize() >= self._config.backpressure_threshold:
            utt.last_partial_at = now  # fall behind gracefully: skip this partial, keep the audio
            return
        utt.last_partial_at = now
        audio = self._vad.utterance_audio()
        if not len(audio):
            return
        utt.partial_decode_end = end_sample = self._samples_in
        # An early decode leaves a worker for other sessions' finals: it only saves time when idle.
        spare = EARLY_DECODE_SPARE_WORKERS if early else 0
        utt.partial_decode = self._tasks.create(
            self._asr.transcribe_partial(
                audio, owner=self._owner, language=self._config.language, spare=spare
            ),
            name="partial-decode",
        )
        utt.partial_task = self._tasks.create(
            self._run_partial(utt, utt.partial_decode, end_sample), name="partial"
        )

    async def _run_partial(self, utt: Utterance, decode: asyncio.Task, end_sample: int) -> None:
        try:
            # Shielded: the speculative final may be waiting for the same decode (_final_text).
            result = await asyncio.shield(decode)
        except StreamError as exc:
            if exc.code == "MODEL_LOAD_FAILED":
                return  # reported once per utterance by the final
            await self._emit(ErrorEvent.from_error(exc, utt.turn_id))
            return
        if result is None or not result.text or self._utt is not utt:
            return
        utt.clock.mark("t1")
        utt.clock.partials += 1
        utt.last_partial_text = result.text
        utt.last_partial_end = end_sample
        await self._emit(PartialTranscript(utt.turn_id, result.text))
