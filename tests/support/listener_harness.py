"""A Listener running on its own, fed through its inbox the way the session feeds it."""

from __future__ import annotations

import asyncio

import numpy as np

from streaming.audio import SAMPLE_RATE
from streaming.commands import StartCommand
from streaming.config import StreamConfig
from streaming.inbox import SessionInbox
from streaming.listener import InputCommand, Listener
from streaming.turn_detection import TurnDetector
from streaming.turns import PendingTurn
from tests.support.fakes import ScriptedASR
from tests.support.session_driver import Collector

CHUNK = 1600  # samples: 100 ms
OWNER = "listener-test"
# Partials only when a test asks for them (they depend on wall-clock time).
BASE = {"vad_silence_ms": 500, "partial_interval_ms": 10000}


class Harness:
    """A running Listener with its inbox; utterances it hands on are recorded among its events."""

    def __init__(
        self,
        asr: ScriptedASR,
        *,
        hand_on_delay: float = 0.0,
        detector: TurnDetector | None = None,
        **config,
    ) -> None:
        self.config = StreamConfig().replace(**{**BASE, **config})
        self.asr = asr
        self.events = Collector()
        self.voice_calls = 0
        self.resuming_voice_calls = 0
        self.hand_on_delay = hand_on_delay
        # Generous bounds: these tests feed audio faster than real time on purpose.
        self.inbox: SessionInbox[InputCommand] = SessionInbox(max_speed=100, burst_s=120)
        self.listener = Listener(
            self.config,
            asr,
            detector=detector,
            owner=OWNER,
            inbox=self.inbox,
            emit=self.events,
            on_utterance=self._on_utterance,
            on_voice=self._on_voice,
            on_cancel=self._on_cancel,
        )
        self.cancels_reached = 0
        self.task = asyncio.create_task(self.listener.run())

    async def _on_utterance(self, turn: PendingTurn) -> None:
        """The turn stage's ``put_utterance``; a delay stands for its pending slots being taken."""
        await asyncio.sleep(self.hand_on_delay)
        await self.events(turn)

    def _on_cancel(self) -> None:
        self.cancels_reached += 1

    async def _on_voice(self, resumes: bool) -> None:
        self.voice_calls += 1
        self.resuming_voice_calls += resumes

    def start(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.inbox.start_stream(sample_rate)
        self.inbox.put(StartCommand(sample_rate))

    async def feed(self, samples: np.ndarray, pace: float = 0.0) -> None:
        for start in range(0, len(samples), CHUNK):
            self.inbox.put_audio(samples[start : start + CHUNK].tobytes())
            await asyncio.sleep(pace)

    def kinds(self) -> list[type]:
        return [type(e) for e in self.events.events]

    def turns(self) -> list[PendingTurn]:
        return self.events.of(PendingTurn)

    def count(self, kind: type) -> int:
        return len(self.events.of(kind))

    async def close(self) -> None:
        if not self.task.done():
            self.inbox.put(None)
        await asyncio.wait_for(self.task, 10)
        await self.listener.aclose()
