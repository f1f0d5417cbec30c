"""Drive a VoiceSession in a test: scripted engines, real audio fed in frames, emitted events collected."""

from __future__ import annotations

import asyncio

import numpy as np

from streaming.config import StreamConfig
from streaming.memory import ConversationMemory
from streaming.session import Engines, VoiceSession
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS
from tests.support.speech import load_clip, silence

CHUNK = 1600  # samples: 100 ms


class Collector:
    """Records emitted events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list = []
        self._changed = asyncio.Event()

    async def __call__(self, event) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate, timeout: float = 10.0):
        async def _wait():
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def for_turn(self, turn_id: str) -> list:
        return [e for e in self.events if getattr(e, "turn_id", None) == turn_id]


def make_session(asr=None, llm=None, tts=None, detector=None, **config) -> tuple[VoiceSession, Collector]:
    settings = {"barge_in": False, "vad_silence_ms": 500, "partial_interval_ms": 10000}
    settings.update(config)
    cfg = StreamConfig().replace(**settings)
    collector = Collector()
    engines = Engines(
        asr=asr or ScriptedASR(["hello there", "second thing"]),
        llm=llm or ScriptedLLM([["Hi", " there.", " How", " are", " you?"]]),
        tts=tts or ScriptedTTS(seconds_per_char=0.001),
        turn_detector=detector,
    )
    memory = ConversationMemory(cfg.system_prompt, max_turns=cfg.memory_turns, max_chars=cfg.memory_max_chars)
    session = VoiceSession(cfg, engines, collector, memory=memory, conversation_id="test")
    session.open()
    return session, collector


async def feed(session: VoiceSession, samples: np.ndarray, pace: float = 0.0) -> None:
    for start in range(0, len(samples), CHUNK):
        session.push_audio(samples[start : start + CHUNK].tobytes())
        await asyncio.sleep(pace)


def utterance(name: str = "ps_goforward", trailing: float = 1.0) -> np.ndarray:
    return np.concatenate([silence(0.3), load_clip(name), silence(trailing)])
