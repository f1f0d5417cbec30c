"""The Piper synthesis worker: one voice on onnxruntime in a process of its own.

Started as ``python -m streaming.tts.piper_worker WORKDIR VOICE THREADS RATE`` by
:mod:`streaming.tts.piper` and spoken to in the frames of :mod:`streaming.tts.frames`.
"""

from __future__ import annotations

import io
import json
import wave

import onnxruntime
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from streaming.tts.frames import run_worker
from streaming.tts.piper import find_voice

PACE_SAMPLE = "This morning we walked along the river to the old market for bread"
"""Read twice at start-up to measure the voice's pace in words per minute; about one phrase
long, so measuring it does not grow the inference buffers beyond what phrases need."""
PACE_LIMITS = (0.5, 2.5)
"""How far the voice's length scale may be squeezed or stretched to reach the asked rate."""


class PiperSynthesizer:
    """One Piper voice speaking at ``rate`` words per minute, with ``threads`` inference threads."""

    def __init__(self, voice: str, threads: int, rate: int) -> None:
        model = find_voice(voice)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: the cores are shared with Whisper.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        config = json.loads(model.with_suffix(".onnx.json").read_text(encoding="utf-8"))
        self._voice = PiperVoice(
            config=PiperConfig.from_dict(config),
            session=onnxruntime.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            ),
        )
        self.voice = model.stem
        self._pace = SynthesisConfig(length_scale=self._length_scale_for(rate))

    def _length_scale_for(self, rate: int) -> float:
        """The length scale at which the voice reads ``rate`` words a minute.

        A sentence's duration is about ``fixed + per_scale * length_scale`` (its
        edges do not stretch), so two readings of a sample fit both terms.
        """
        base = self._voice.config.length_scale
        at_1, at_2 = (
            _seconds(self._synthesize(PACE_SAMPLE, SynthesisConfig(length_scale=base * k))) for k in (1, 2)
        )
        per_scale, fixed = at_2 - at_1, 2 * at_1 - at_2
        wanted = len(PACE_SAMPLE.split()) / rate * 60
        return base * min(max((wanted - fixed) / per_scale, PACE_LIMITS[0]), PACE_LIMITS[1])

    def synthesize(self, text: str) -> bytes:
        return self._synthesize(text, self._pace)

    def _synthesize(self, text: str, pace: SynthesisConfig) -> bytes:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setframerate(self._voice.config.sample_rate)
            wav.setsampwidth(2)
            wav.setnchannels(1)
            self._voice.synthesize_wav(text, wav, syn_config=pace, set_wav_format=False)
        return buffer.getvalue()


def _seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as reader:
        return reader.getnframes() / reader.getframerate()


def load(workdir: str, args: list[str]) -> PiperSynthesizer:
    voice, threads, rate = args
    return PiperSynthesizer(voice, int(threads), int(rate))


if __name__ == "__main__":
    run_worker(load)
