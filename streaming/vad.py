"""Utterance segmentation with webrtcvad: a small state machine over 16 kHz int16 audio.

:class:`VadSegmenter` classifies fixed 10/20/30 ms frames with webrtcvad and
turns the voiced/unvoiced flags into utterance events:

* QUIET -> STARTING on a voiced frame; STARTING -> SPEAKING once ``start_ms`` of
  voiced audio falls inside a sliding window of twice that length (a lone click
  does not start an utterance).  The utterance begins ``preroll_ms`` before the
  first voiced frame, so the first syllable is kept.
* SPEAKING -> STOPPING after a short pause (``pause_ms``, at most 200 ms): this
  is :class:`SilenceStart`, the moment to decode the final speculatively.
  STOPPING -> SPEAKING when speech comes back (same rule as the start):
  :class:`SpeechResume`.  STOPPING -> QUIET after ``silence_ms`` without speech:
  :class:`UtteranceEnd`, or :class:`SpeechDiscarded` if the utterance held less
  than ``min_speech_ms`` of voiced audio (a click or a cough).
* An utterance reaching ``max_utterance_s`` is cut at the quietest frame of its
  last 1.5 s and a new one starts right there, so a monologue loses nothing.

Inside an utterance a frame webrtcvad calls voiced still counts as silence when it
is ``tail_gate_db`` below the utterance's mean speech level (or within 6 dB of the
background heard before it), and at least 15 dB below that level.  webrtcvad holds
its verdict for 60-90 ms after speech stops (its built-in hangover); without the
gate that hangover is added to every silence wait.  With noise louder than the
gate, webrtcvad alone decides, as before.

webrtcvad flags the first ~120 ms of a stream as speech whatever it holds, so
frames in the first 200 ms never count as voiced; the audio is still kept for
pre-roll.  The segmenter is pure and synchronous; positions are sample indexes
from the start of the stream.
"""

from __future__ import annotations

import math
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np
import webrtcvad

from streaming.audio import SAMPLE_RATE, decibels, rms
from streaming.states import Transitions
from streaming.vad_events import (
    SilenceStart,
    SpeechDiscarded,
    SpeechResume,
    SpeechStart,
    UtteranceEnd,
    VadEvent,
)

if TYPE_CHECKING:
    from streaming.config import StreamConfig


FRAME_MS_CHOICES = (10, 20, 30)
_MAX_PAUSE_MS = 200
# webrtcvad calls the first ~120 ms of any stream speech while its noise model settles.
_WARMUP_MS = 200
_SPLIT_SEARCH_MS = 1500
_GATE_MIN_DB = 15.0
_NOISE_MARGIN_DB = 6.0
_NOISE_SMOOTHING = 0.05
_EMPTY = np.zeros(0, dtype=np.int16)


class VadState(Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


_TRANSITIONS = Transitions(
    "VAD",
    {
        VadState.QUIET: {VadState.STARTING, VadState.SPEAKING},
        VadState.STARTING: {VadState.QUIET, VadState.SPEAKING},
        VadState.SPEAKING: {VadState.STOPPING, VadState.QUIET},
        VadState.STOPPING: {VadState.SPEAKING, VadState.QUIET},
    },
)


class VadSegmenter:
    """Feeds 16 kHz int16 audio through webrtcvad and reports utterance boundaries."""

    def __init__(
        self,
        *,
        aggressiveness: int,
        frame_ms: int,
        silence_ms: int,
        preroll_ms: int,
        start_ms: int,
        max_utterance_s: float,
        min_speech_ms: int,
        tail_gate_db: float = 0.0,
    ) -> None:
        if frame_ms not in FRAME_MS_CHOICES:
            raise ValueError(f"frame_ms must be one of {FRAME_MS_CHOICES}, not {frame_ms}")
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, not {aggressiveness}")
        self.frame_ms = frame_ms
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame = SAMPLE_RATE * frame_ms // 1000
        self._start_frames = max(1, math.ceil(start_ms / frame_ms))
        self._window_frames = 2 * self._start_frames
        self._set_silence(silence_ms, None, False)
        self._preroll = SAMPLE_RATE * preroll_ms // 1000
        self._max_samples = round(max_utterance_s * SAMPLE_RATE)
        self._min_speech_frames = math.ceil(min_speech_ms / frame_ms)
        self._recent_limit = self._preroll + self._window_frames * self._frame
        self._warmup = self._frame * math.ceil(_WARMUP_MS / frame_ms)
        self._gate_db = tail_gate_db
        self.reset()

    @classmethod
    def from_config(cls, config: StreamConfig) -> VadSegmenter:
        vad = cls(
            aggressiveness=config.vad_aggressiveness,
            frame_ms=config.vad_frame_ms,
            silence_ms=config.vad_silence_ms,
            preroll_ms=config.vad_preroll_ms,
            start_ms=config.vad_start_ms,
            max_utterance_s=config.max_utterance_s,
            min_speech_ms=config.min_speech_ms,
            tail_gate_db=config.vad_tail_gate_db,
        )
        vad.retune(config)
        return vad

    def retune(self, config: StreamConfig) -> None:
        """Take ``config``'s silence rule, fixed or adaptive (a session's); call between utterances."""
        adaptive = config.turn_detection == "adaptive"
        self._set_silence(config.vad_silence_ms, config.turn_min_silence_ms if adaptive else None, adaptive)

    def _set_silence(self, silence_ms: int, shortest_silence_ms: int | None, hold_for_resume: bool) -> None:
        silence_frames = max(1, math.ceil(silence_ms / self.frame_ms))
        # A pause is reported at 200 ms (Smart Turn's trained silence), or sooner if it may end sooner.
        shortest = shortest_silence_ms or silence_ms
        pause_frames = math.ceil(min(_MAX_PAUSE_MS, silence_ms // 2, shortest * 2 // 3) / self.frame_ms)
        self._pause = self._frame * max(1, min(pause_frames, silence_frames - 1))
        self._silence = self._pause_limit = self._frame * silence_frames
        self._hold_for_resume = hold_for_resume

    def reset(self) -> None:
        """Forget everything: a new stream starting at sample 0."""
        self._state = VadState.QUIET
        self._pending = _EMPTY
        self._pos = 0
        self._floor = 0
        self._window: deque[tuple[int, bool]] = deque(maxlen=self._window_frames)
        self._recent = _EMPTY
        self._recent_start = 0
        self._noise_db = 0.0
        self._clear_utterance()

    def _clear_utterance(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._utt_start = 0
        self._utt_len = 0
        self._speech_end = 0
        self._pause_limit = self._silence
        self._voiced_frames = 0
        self._continuation = False
        self._frame_log: list[tuple[int, bool, float]] = []
        self._level_sum = 0.0
        self._level_frames = 0

    @property
    def state(self) -> VadState:
        return self._state

    @property
    def in_speech(self) -> bool:
        """True between SpeechStart and the utterance's end."""
        return self._state in (VadState.SPEAKING, VadState.STOPPING)

    @property
    def position(self) -> int:
        """Samples consumed so far (the stream position of the next frame)."""
        return self._pos

    @property
    def voiced_ms(self) -> int:
        """Voiced audio in the current utterance so far; 0 when not in speech."""
        return self._voiced_frames * self.frame_ms if self.in_speech else 0

    @property
    def paused_at(self) -> int | None:
        """Where the silence after speech began while it is too short to be a pause (SPEAKING)."""
        return self._speech_end if self._state is VadState.SPEAKING and self._pos > self._speech_end else None

    def utterance_audio(self) -> np.ndarray:
        """The current utterance's audio so far, pre-roll included; empty when not in speech."""
        return self._audio().copy() if self.in_speech else _EMPTY.copy()

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Classify as many whole frames as ``samples`` completes; the rest waits for the next call."""
        # A private copy: the caller may reuse its buffer, and frames are kept as utterance audio.
        samples = np.concatenate((self._pending, np.asarray(samples, dtype=np.int16)))
        events: list[VadEvent] = []
        whole = len(samples) - len(samples) % self._frame
        for offset in range(0, whole, self._frame):
            frame = samples[offset : offset + self._frame]
            voiced = self._vad.is_speech(frame.tobytes(), SAMPLE_RATE) and self._pos >= self._warmup
            self._step(frame, voiced, events)
        self._pending = samples[whole:]
        return events

    def flush(self, reason: str = "stop") -> UtteranceEnd | None:
        """End the utterance in progress now (stop, disconnect); None if there is none worth keeping.

        The segmenter stays usable and keeps its stream position: no ``reset()`` is needed after it.
        """
        leftover, self._pending = self._pending, _EMPTY
        if self.in_speech:
            self._append(leftover)
            ended = self._finish(reason, self._speech_end + self._pause)
            return ended if isinstance(ended, UtteranceEnd) else None
        self._remember(leftover)
        self._window.clear()
        if self._state is VadState.STARTING:
            self._transition(VadState.QUIET)
        return None

    def end_pause_after(
        self, speech_end_sample: int, silence_ms: int
    ) -> UtteranceEnd | SpeechDiscarded | None:
        """Let the pause that began at ``speech_end_sample`` end the utterance after ``silence_ms``
        instead of the constructor's ``silence_ms`` (an end-of-turn verdict on that pause).

        Returns the end at once if that much silence has already passed; None otherwise, or
        when that pause is over (speech resumed, or the utterance already ended).
        """
        if self._state is not VadState.STOPPING or self._speech_end != speech_end_sample:
            return None
        self._pause_limit = self._frame * max(1, math.ceil(silence_ms / self.frame_ms))
        if self._pause_over(self._pos):
            return self._finish("silence", self._speech_end + self._pause)
        return None

    def _pause_over(self, end: int) -> bool:
        """Whether the pause has lasted its limit by sample ``end``.

        With ``hold_for_resume``, not while voiced frames in the onset window may still
        prove that speech is back (at most one window longer): the pause a user makes is
        then measured to where they speak again, not to where the VAD is sure of it.
        """
        silence = end - self._speech_end
        if silence < self._pause_limit:
            return False
        held = self._hold_for_resume and any(flag for _, flag in self._window)
        return not held or silence >= self._pause_limit + self._window_frames * self._frame

    def _transition(self, new: VadState) -> None:
        self._state = _TRANSITIONS.check(self._state, new)

    def _step(self, frame: np.ndarray, voiced: bool, events: list[VadEvent]) -> None:
        start = self._pos
        end = start + len(frame)
        if self._state in (VadState.QUIET, VadState.STARTING):
            if not voiced and self._gate_db:
                self._noise_db += _NOISE_SMOOTHING * (decibels(rms(frame)) - self._noise_db)
            self._remember(frame)
            self._window.append((start, voiced))
            self._step_quiet(events)
            return
        self._append(frame)
        level = rms(frame)
        voiced = self._gate(voiced, level)
        self._frame_log.append((end, voiced, level))
        if self._state is VadState.SPEAKING:
            self._step_speaking(voiced, end, events)
        else:
            self._step_stopping(voiced, start, end, events)

    def _gate(self, voiced: bool, level: float) -> bool:
        """webrtcvad's verdict, overruled for frames far quieter than this utterance's speech."""
        if not voiced or not self._gate_db:
            return voiced
        level_db = decibels(level)
        if self._level_frames:
            speech_db = self._level_sum / self._level_frames
            if level_db < speech_db - _GATE_MIN_DB and (
                level_db < speech_db - self._gate_db or level_db < self._noise_db + _NOISE_MARGIN_DB
            ):
                return False
        self._level_sum += level_db
        self._level_frames += 1
        return True

    def _step_quiet(self, events: list[VadEvent]) -> None:
        voiced = [start for start, flag in self._window if flag]
        if len(voiced) >= self._start_frames:
            self._begin(voiced[0], len(voiced), events)
        elif voiced and self._state is VadState.QUIET:
            self._transition(VadState.STARTING)
        elif not voiced and self._state is VadState.STARTING:
            self._transition(VadState.QUIET)

    def _begin(self, onset: int, voiced_frames: int, events: list[VadEvent]) -> None:
        self._transition(VadState.SPEAKING)
        start = max(onset - self._preroll, self._floor, self._recent_start)
        self._clear_utterance()
        self._utt_start = start
        self._append(self._recent[start - self._recent_start :])
        self._speech_end = self._pos
        self._voiced_frames = voiced_frames
        self._window.clear()
        events.append(SpeechStart(start))

    def _step_speaking(self, voiced: bool, end: int, events: list[VadEvent]) -> None:
        if voiced:
            self._voiced_frames += 1
            self._speech_end = end
        elif end - self._speech_end >= self._pause:
            self._transition(VadState.STOPPING)
            events.append(SilenceStart(self._speech_end))
            return
        if self._utt_len >= self._max_samples:
            self._split(events)

    def _step_stopping(self, voiced: bool, start: int, end: int, events: list[VadEvent]) -> None:
        self._window.append((start, voiced))
        voiced_starts = [frame_start for frame_start, flag in self._window if flag]
        if len(voiced_starts) >= self._start_frames:
            self._transition(VadState.SPEAKING)
            self._voiced_frames += len(voiced_starts)
            self._speech_end = end
            self._pause_limit = self._silence
            self._window.clear()
            events.append(SpeechResume(voiced_starts[0]))
            return
        if self._pause_over(end):
            events.append(self._finish("silence", self._speech_end + self._pause))
        elif self._utt_len >= self._max_samples:
            events.append(self._finish("max_length", self._speech_end + self._pause))

    def _split(self, events: list[VadEvent]) -> None:
        """Cut an over-long utterance at its quietest recent frame and continue in a new one."""
        search_from = self._pos - min(SAMPLE_RATE * _SPLIT_SEARCH_MS // 1000, self._utt_len // 2)
        candidates = [(rms, end) for end, _, rms in self._frame_log if end - self._frame >= search_from]
        cut = min(candidates)[1] - self._frame // 2
        audio = self._audio()
        events.append(UtteranceEnd(audio[: cut - self._utt_start], self._utt_start, cut, "max_length"))
        rest = audio[cut - self._utt_start :].copy()
        kept = [entry for entry in self._frame_log if entry[0] > cut]
        level = self._level_sum, self._level_frames
        self._clear_utterance()
        self._level_sum, self._level_frames = level
        self._utt_start = cut
        self._append(rest)
        self._frame_log = kept
        self._voiced_frames = sum(1 for _, flag, _ in kept if flag)
        self._speech_end = max((end for end, flag, _ in kept if flag), default=cut)
        self._continuation = True
        events.append(SpeechStart(cut))

    def _finish(self, reason: str, cut: int) -> UtteranceEnd | SpeechDiscarded:
        """Close the utterance at ``cut`` (clamped to the audio held) and return to QUIET."""
        audio = self._audio()
        keep = min(cut - self._utt_start, len(audio))
        start, speech_end = self._utt_start, self._speech_end
        worth_keeping = self._continuation or self._voiced_frames >= self._min_speech_frames
        self._transition(VadState.QUIET)
        if worth_keeping:
            self._floor = start + keep
        # A dropped click may still be the pre-roll of what follows, so it stays in the history.
        self._recent = (audio[keep:] if worth_keeping else audio)[-self._recent_limit :].copy()
        self._recent_start = self._pos - len(self._recent)
        self._window.clear()
        self._clear_utterance()
        if not worth_keeping:
            return SpeechDiscarded(start, self._pos)
        return UtteranceEnd(audio[:keep], start, speech_end, reason, self._pos)

    def _append(self, samples: np.ndarray) -> None:
        if samples.size:
            self._chunks.append(samples)
            self._utt_len += len(samples)
        self._pos = self._utt_start + self._utt_len

    def _audio(self) -> np.ndarray:
        if not self._chunks:
            return _EMPTY
        self._chunks = [np.concatenate(self._chunks)] if len(self._chunks) > 1 else self._chunks
        return self._chunks[0]

    def _remember(self, samples: np.ndarray) -> None:
        """Keep the last pre-roll + onset window of audio heard outside an utterance."""
        self._pos += len(samples)
        self._recent = np.concatenate((self._recent, samples))[-self._recent_limit :]
        self._recent_start = self._pos - len(self._recent)
