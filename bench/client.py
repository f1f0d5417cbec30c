"""A conversational client: speaks clips at real-time pace, waits for each reply and listens to it.

It behaves like a person at a microphone: audio flows continuously (speech,
else silence) in real time; after speaking it stays silent until the reply has
been heard, pauses, and speaks the next clip.  Every server event is stamped on
the client's monotonic clock when it arrives, so latencies are what a user
would experience over a real WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from bench.corpus import Clip
from streaming.audio import SAMPLE_RATE

FRAME_S = 0.1
TURN_TIMEOUT_S = 60.0
"""A clip whose turns hear nothing more from the server for this long, after its speech end, is
lost ("timeout"); a long reply keeps it alive (its turn completes as it is played)."""
SETTLE_S = 1.0
"""Past the speech end plus the VAD silence timeout, a clip's utterances are over."""
_NO_TURN_REASONS = ("cancelled", "too_short")  # speech_stopped reasons after which no final follows


class SessionAborted(RuntimeError):
    """The server ended the session (unrecoverable error or closed socket)."""


@dataclass
class ServerTurn:
    """One server turn (one ``turn_id``): when its events arrived."""

    turn_id: str
    started_at: float | None = None
    """When ``speech_started`` arrived: where the server began this turn in the clip."""
    final_at: float | None = None
    final_text: str = ""
    final_source: str | None = None
    first_token_at: float | None = None
    first_tts_at: float | None = None
    partials_at: list[float] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    resolved: bool = False
    status: str = ""


@dataclass
class TurnRecord:
    """What the client saw of one spoken clip, on its own monotonic clock.

    A clip is normally one server turn; if the VAD split it, its finals are
    joined for WER and the latencies are those of its last turn.
    """

    clip: str
    reference: str
    speech_s: float
    started_at: float
    speech_end_at: float | None = None
    turns: list[ServerTurn] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    playback_end: float = 0.0
    stopped_after_end: bool = False
    status: str = "pending"
    last_heard_at: float = 0.0
    """When the server last sent something about one of this clip's turns."""

    def gave_up_at(self) -> float:
        """When the client stops waiting for this clip's turns: :data:`TURN_TIMEOUT_S` after its
        speech end or the last word of its turns from the server, whichever came later."""
        assert self.speech_end_at is not None
        return max(self.speech_end_at, self.last_heard_at) + TURN_TIMEOUT_S

    @property
    def text(self) -> str:
        return " ".join(t.final_text for t in self.turns if t.final_text)

    def latencies_ms(self) -> dict[str, float | None]:
        """Endpointing, final → first token, first token → first TTS chunk, voice-to-voice."""
        last = next((t for t in reversed(self.turns) if t.final_at is not None), None)
        end = self.speech_end_at

        def ms(start: float | None, stop: float | None) -> float | None:
            return None if start is None or stop is None else round((stop - start) * 1000, 1)

        return {
            "endpointing_ms": ms(end, last.final_at) if last else None,
            "final_to_token_ms": ms(last.final_at, last.first_token_at) if last else None,
            "token_to_tts_ms": ms(last.first_token_at, last.first_tts_at) if last else None,
            "voice_to_voice_ms": ms(end, last.first_tts_at) if last else None,
        }

    def partial_intervals_s(self) -> list[float]:
        """Gaps between consecutive partial transcripts while the clip was spoken."""
        stamps = sorted(at for t in self.turns for at in t.partials_at)
        return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]

    def partial_count(self) -> int:
        return sum(len(t.partials_at) for t in self.turns)

    def as_dict(self) -> dict[str, Any]:
        metrics = (self.turns[-1].metrics or {}) if self.turns else {}
        return {
            "clip": self.clip,
            "status": self.status,
            "text": self.text,
            "server_turns": len(self.turns),
            "final_source": self.turns[-1].final_source if self.turns else None,
            "partials": self.partial_count(),
            "errors": self.errors,
            **self.latencies_ms(),
            "server_endpointing_ms": metrics.get("endpointing_ms"),
            "server_asr_ms": metrics.get("asr_ms"),
        }


class Microphone:
    """Sends 16-bit PCM in real time: the speech it was given, else silence, as a live microphone.

    A frame is sent the moment its last sample would have been captured.  A frame
    ends exactly at the marked speech-end sample, so the instant that frame is
    sent is the clip's speech end on the client clock.
    """

    def __init__(self, ws: Any, frame_s: float = FRAME_S) -> None:
        self._ws = ws
        self._frame = round(frame_s * SAMPLE_RATE)
        self._speech: np.ndarray | None = None
        self._pos = 0
        self._mark = -1
        self._marked: asyncio.Future[float] | None = None
        self.max_lag_s = 0.0

    async def say(self, samples: np.ndarray, mark_sample: int) -> float:
        """Queue ``samples`` to be spoken now; return the instant the frame ending at ``mark_sample`` left."""
        self._marked = asyncio.get_running_loop().create_future()
        self._speech, self._pos, self._mark = samples, 0, mark_sample
        return await self._marked

    async def run(self) -> None:
        """Send frames forever, paced by the sample clock (cancel to stop)."""
        began = time.monotonic()
        captured = 0
        try:
            while True:
                chunk = self._next_chunk()
                captured += len(chunk)
                delay = began + captured / SAMPLE_RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.max_lag_s = max(self.max_lag_s, -delay)
                await self._ws.send(chunk.tobytes())
                self._after_send(time.monotonic())
        except Exception as exc:
            # A closed socket must not leave say() waiting for a frame that will never be sent.
            if self._marked is not None and not self._marked.done():
                self._marked.set_exception(SessionAborted(f"audio could not be sent: {exc}"))
            raise

    def _next_chunk(self) -> np.ndarray:
        if self._speech is None:
            return np.zeros(self._frame, dtype=np.int16)
        end = min(self._pos + self._frame, len(self._speech))
        if self._pos < self._mark < end:
            end = self._mark
        chunk = self._speech[self._pos : end]
        self._pos = end
        return chunk

    def _after_send(self, now: float) -> None:
        if self._speech is None:
            return
        if self._marked is not None and self._pos >= self._mark and not self._marked.done():
            self._marked.set_result(now)
        if self._pos >= len(self._speech):
            self._speech = None


@dataclass
class SessionResult:
    """Everything one conversation produced."""

    turns: list[TurnRecord]
    max_send_lag_s: float
    error: str | None = None
    error_codes: dict[str, int] = field(default_factory=dict)
    """Every ``error`` event by code, those outside a clip's turns included."""
    final_ids: list[str] = field(default_factory=list)
    """The id of every ``final_transcript`` received: what the server must have stored."""


class Conversation:
    """One WebSocket session speaking ``clips`` in turn; :meth:`run` returns its :class:`SessionResult`.

    ``clips`` may be a generator: a soak speaks until its generator stops at a deadline.
    """

    def __init__(
        self,
        url: str,
        token: str,
        clips: Iterable[Clip],
        *,
        think_s: float = 0.8,
        start_delay_s: float = 0.0,
    ) -> None:
        self.url = url
        self.token = token
        self.clips = clips
        self.think_s = think_s
        self.start_delay_s = start_delay_s
        self.session_info: dict[str, Any] = {}
        self._record: TurnRecord | None = None
        self._by_id: dict[str, ServerTurn] = {}
        self._changed = asyncio.Event()
        self._aborted: str | None = None
        self._silence_s = 0.7
        self._error_codes: Counter[str] = Counter()
        self._final_ids: list[str] = []

    async def run(self) -> SessionResult:
        await asyncio.sleep(self.start_delay_s)
        records: list[TurnRecord] = []
        headers = {"Authorization": f"Bearer {self.token}"}
        mic: Microphone | None = None
        error = None
        try:
            async with websockets.connect(self.url, additional_headers=headers, max_size=None) as ws:
                self.session_info = json.loads(await ws.recv())
                self._silence_s = self.session_info.get("limits", {}).get("vad_silence_ms", 700) / 1000
                await ws.send(json.dumps({"type": "start", "sample_rate": SAMPLE_RATE}))
                mic = Microphone(ws)
                tasks = [
                    asyncio.create_task(mic.run(), name="bench-mic"),
                    asyncio.create_task(self._receive(ws), name="bench-receive"),
                ]
                try:
                    for clip in self.clips:
                        await self._silence(self.think_s)
                        records.append(await self._speak(mic, clip))
                    await ws.send(json.dumps({"type": "stop"}))
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        except (SessionAborted, OSError, websockets.WebSocketException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return SessionResult(
            records,
            mic.max_lag_s if mic else 0.0,
            error or self._aborted,
            dict(self._error_codes),
            self._final_ids,
        )

    async def _silence(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._check()

    async def _speak(self, mic: Microphone, clip: Clip) -> TurnRecord:
        record = TurnRecord(clip.name, clip.reference, clip.speech_end_s, time.monotonic())
        self._record = record
        record.speech_end_at = await mic.say(clip.samples, clip.speech_end_sample)
        while True:
            self._changed.clear()  # before the check, so a message arriving meanwhile is not missed
            if self._done(record):
                break
            self._check()
            remaining = record.gave_up_at() - time.monotonic()
            if remaining <= 0:
                record.status = "timeout"
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        self._record = None
        if record.status == "pending":
            finished = [t for t in record.turns if t.final_at is not None]
            record.status = finished[-1].status if finished else "no_speech"
        # Listen to the rest of the reply before speaking again, as a person would.
        await self._silence(max(0.0, record.playback_end - time.monotonic()))
        return record

    def _done(self, record: TurnRecord) -> bool:
        """Every turn the server started is resolved, and no further one can still be coming.

        Normally the last utterance ends (``speech_stopped``) after the clip's speech
        end; if the VAD ended it earlier (quiet last syllables), a silence timeout
        past the speech end without a new utterance settles it.
        """
        if not all(t.resolved for t in record.turns):
            return False
        assert record.speech_end_at is not None
        settled = record.speech_end_at + self._silence_s + SETTLE_S
        if not record.turns:  # the VAD heard nothing: give up a few seconds later
            return time.monotonic() >= settled + 5
        return record.stopped_after_end or time.monotonic() >= settled

    def _check(self) -> None:
        if self._aborted:
            raise SessionAborted(self._aborted)

    async def _receive(self, ws: Any) -> None:
        try:
            async for raw in ws:
                if isinstance(raw, str):
                    self._on_message(json.loads(raw), time.monotonic())
                    self._changed.set()
        except websockets.ConnectionClosed as exc:
            self._aborted = f"connection closed ({exc.code})"
        self._aborted = self._aborted or "connection closed"
        self._changed.set()

    def _on_message(self, message: dict[str, Any], at: float) -> None:
        kind = message.get("type")
        record = self._record
        turn_id = message.get("turn_id")
        if kind == "error":
            self._error_codes[str(message.get("code"))] += 1
        elif kind == "final_transcript":
            self._final_ids.append(str(message.get("id")))
        if kind == "error" and not message.get("recoverable", True):
            self._aborted = f"{message.get('code')}: {message.get('message')}"
            return
        if record is None or turn_id is None:
            return
        if kind == "speech_started":
            turn = ServerTurn(turn_id, started_at=at)
            self._by_id[turn_id] = turn
            record.turns.append(turn)
            return
        turn = self._by_id.get(turn_id)
        if turn is None:
            return
        record.last_heard_at = at
        if kind == "partial_transcript":
            turn.partials_at.append(at)
        elif kind == "final_transcript":
            turn.final_at, turn.final_text = at, message.get("text", "")
        elif kind == "llm_token" and turn.first_token_at is None:
            turn.first_token_at = at
        elif kind == "tts_chunk":
            turn.first_tts_at = turn.first_tts_at or at
            record.playback_end = max(record.playback_end, at) + float(message.get("duration_s", 0.0))
        elif kind == "metrics":
            turn.metrics = message
            turn.final_source = message.get("final_source")
        elif kind == "interrupted":
            record.playback_end = min(record.playback_end, at)  # a client stops playing at once
        elif kind == "turn_complete":
            turn.resolved, turn.status = True, message.get("status", "")
        elif kind == "info":
            turn.resolved, turn.status = True, "no_speech"  # "No speech recognised."
        elif kind == "speech_stopped":
            if record.speech_end_at is not None and at >= record.speech_end_at:
                record.stopped_after_end = True
            if message.get("reason") in _NO_TURN_REASONS:
                turn.resolved, turn.status = True, str(message["reason"])
        elif kind == "error":
            record.errors.append(str(message.get("code")))
            if str(message.get("code", "")).startswith("ASR"):
                turn.resolved, turn.status = True, "asr_error"
