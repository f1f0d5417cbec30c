"""Scripted engines with exact timelines, implementing the real engine interfaces.

Used beside, never instead of, the real-engine tests: they make barge-in,
cancellation and timeouts happen at a known instant.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Hashable

import numpy as np

from streaming.asr import Transcription
from streaming.audio import SAMPLE_RATE, wav_bytes
from streaming.errors import ASRFailed, LLMError, TTSFailed
from streaming.llm import ChatMessage


class ScriptedASR:
    """Returns the scripted finals in order; partials say how much audio they saw.

    It also records, per owner, the most finals that were in flight at once.
    """

    name = "scripted-asr"
    ready = True

    def __init__(
        self,
        finals: list[str],
        *,
        final_delay: float = 0.05,
        partial_delay: float = 0.02,
        partials: str = "length",
    ) -> None:
        self.finals = list(finals)
        self.final_delay = final_delay
        self.partial_delay = partial_delay
        self.partials = partials
        """What a partial says: ``length`` (how much audio it saw), ``next_final`` (the next final's
        words, as Whisper's greedy partial of a whole utterance does) or ``skipped`` (None: no
        worker was free)."""
        self.final_calls = 0
        self.partial_calls = 0
        self.languages: list[str | None] = []
        """The ``language`` of every call, in order."""
        self.in_flight: Counter[Hashable] = Counter()
        self.most_in_flight: Counter[Hashable] = Counter()

    async def transcribe_final(
        self, audio: np.ndarray, *, owner: Hashable, language: str | None = None
    ) -> Transcription:
        self.final_calls += 1
        self.languages.append(language)
        self.in_flight[owner] += 1
        self.most_in_flight[owner] = max(self.most_in_flight[owner], self.in_flight[owner])
        try:
            await asyncio.sleep(self.final_delay)
        finally:
            self.in_flight[owner] -= 1
        if not self.finals:
            raise ASRFailed("no scripted final left")
        return Transcription(self.finals.pop(0), len(audio) / SAMPLE_RATE, self.final_delay)

    async def transcribe_partial(
        self, audio: np.ndarray, *, owner: Hashable, language: str | None = None, spare: int = 0
    ) -> Transcription | None:
        self.partial_calls += 1
        self.languages.append(language)
        if self.partials == "skipped":
            return None
        await asyncio.sleep(self.partial_delay)
        if self.partials == "next_final" and self.finals:
            return Transcription(self.finals[0], len(audio) / SAMPLE_RATE, self.partial_delay)
        return Transcription(f"partial {len(audio) / SAMPLE_RATE:.1f}s", len(audio) / SAMPLE_RATE, 0.0)


class ScriptedLLM:
    """Streams the scripted reply tokens with ``delay`` between them; can stall or fail."""

    offline = True

    def __init__(
        self,
        replies: list[list[str]],
        *,
        delay: float = 0.0,
        stall_after: int | None = None,
        fail_after: int | None = None,
    ) -> None:
        self.name = "scripted-llm"
        self.replies = list(replies)
        self.delay = delay
        self.stall_after = stall_after
        self.fail_after = fail_after
        self.requests: list[list[ChatMessage]] = []
        self.closed = 0

    def speaking(self, language: str) -> ScriptedLLM:
        """The same script whatever the language."""
        return self

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        self.requests.append(list(messages))
        tokens = self.replies.pop(0) if self.replies else ["Okay."]
        try:
            for index, token in enumerate(tokens):
                if self.stall_after is not None and index == self.stall_after:
                    await asyncio.sleep(3600)
                if self.fail_after is not None and index == self.fail_after:
                    raise LLMError("scripted failure")
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield token
        finally:
            self.closed += 1


class ScriptedTTS:
    """Returns a WAV of ``seconds_per_char`` × len(text) of quiet tone after ``delay``."""

    name = "scripted-tts"
    label = "Scripted voice"

    def __init__(
        self, *, delay: float = 0.01, seconds_per_char: float = 0.05, fail_on: str | None = None
    ) -> None:
        self.delay = delay
        self.seconds_per_char = seconds_per_char
        self.fail_on = fail_on
        self.texts: list[str] = []

    async def synthesize(self, text: str, *, seq: int = 0) -> bytes:
        await asyncio.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in text:
            raise TTSFailed(f"scripted failure on {text!r}")
        self.texts.append(text)
        samples = int(len(text) * self.seconds_per_char * SAMPLE_RATE)
        tone = (1000 * np.sin(np.arange(samples) * 2 * np.pi * 220 / SAMPLE_RATE)).astype(np.int16)
        return wav_bytes(tone, SAMPLE_RATE)

    async def aclose(self) -> None:
        """Nothing to release."""
