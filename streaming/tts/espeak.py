"""The espeak-ng engine: pyttsx3 in worker processes (:mod:`streaming.tts.espeak_worker`)."""

from __future__ import annotations

from streaming.config import StreamConfig
from streaming.languages import espeak_voice_for
from streaming.tts.workers import WorkerPoolTTS


class Pyttsx3TTS(WorkerPoolTTS):
    """espeak-ng through pyttsx3: robotic but tiny.

    Without ``STREAM_TTS_VOICE`` it speaks ``STREAM_LANGUAGE`` (:func:`espeak_voice_for`).
    """

    worker_module = "streaming.tts.espeak_worker"

    def __init__(self, config: StreamConfig) -> None:
        super().__init__(config)
        self.voice = config.tts_voice or espeak_voice_for(config.language)
        self.rate = config.tts_rate
        self.name = f"pyttsx3:{self.voice}"
        self.label = f"Basic synthetic voice ({self.voice})"
        self.worker_args = [self.voice, str(self.rate)]
