"""The espeak-ng engine: pyttsx3 in worker processes (:mod:`streaming.tts.espeak_worker`)."""

from __future__ import annotations

from streaming.config import StreamConfig
from streaming.languages import espeak_voice_for
from streaming.tts.workers import WorkerPoolTTS

BASIC_VOICE = "Basic synthetic voice"
"""espeak-ng as users read it: no library names on the page."""


class Pyttsx3TTS(WorkerPoolTTS):
    """espeak-ng through pyttsx3: robotic but tiny.

    Without ``STREAM_TTS_VOICE`` it speaks ``STREAM_LANGUAGE`` (:func:`espeak_voice_for`).
    """

    worker_module = "streaming.tts.espeak_worker"

    @staticmethod
    def voice_of(config: StreamConfig) -> str:
        return config.tts_voice or espeak_voice_for(config.language)

    def __init__(self, config: StreamConfig) -> None:
        super().__init__(config)
        self.voice = self.voice_of(config)
        self.rate = config.tts_rate
        self.name = f"pyttsx3:{self.voice}"
        self.label = f"{BASIC_VOICE} ({self.voice})"
        self.worker_args = [self.voice, str(self.rate)]
