"""PCM16 helpers: decode client frames to 16 kHz samples, wrap and read WAV.

Clients send 16-bit little-endian mono PCM at the rate they declared in
``start``.  :class:`PcmDecoder` turns frames of any size into int16 samples at
:data:`SAMPLE_RATE`, the rate webrtcvad and Whisper work at, resampling other
rates with a streaming resampler so frame boundaries leave no clicks or gaps.
"""

from __future__ import annotations

import io
import math
import wave
from os import PathLike

import numpy as np
import soxr

from streaming.errors import UnsupportedSampleRate

SAMPLE_RATE = 16000
SUPPORTED_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)

_EMPTY = np.zeros(0, dtype=np.int16)


class PcmDecoder:
    """Decodes one stream of PCM16 frames into int16 samples at 16 kHz.

    A frame may end in the middle of a sample: the odd byte is kept and joined
    to the next frame.  The resampler keeps its filter state across frames, so
    the output is the same however the input was split.
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate not in SUPPORTED_RATES:
            rates = ", ".join(str(rate) for rate in SUPPORTED_RATES)
            raise UnsupportedSampleRate(f"sample_rate {sample_rate} is not supported; use one of {rates} Hz")
        self.sample_rate = sample_rate
        self._carry = b""
        self._resampler = self._new_resampler()

    def _new_resampler(self) -> soxr.ResampleStream | None:
        if self.sample_rate == SAMPLE_RATE:
            return None
        # float32 inside: soxr's int16 path dithers, which would make the output depend on framing.
        return soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32")

    def feed(self, data: bytes) -> np.ndarray:
        """Decode one frame; returns the 16 kHz samples available so far (maybe none)."""
        if self._carry:
            data = self._carry + data
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        samples = np.frombuffer(data, dtype="<i2", count=usable // 2).astype(np.int16)
        if self._resampler is None:
            return samples
        if samples.size == 0:
            return _EMPTY.copy()
        return _float_to_pcm(self._resampler.resample_chunk(pcm_to_float(samples)))

    def flush(self) -> np.ndarray:
        """End of stream: the samples still held by the resampler (a dangling odd byte is discarded).

        The decoder can then start a new stream.
        """
        self._carry = b""
        if self._resampler is None:
            return _EMPTY.copy()
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._resampler = self._new_resampler()
        return _float_to_pcm(tail)


def pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 samples to float32 in [-1, 1], the input Whisper expects."""
    return samples.astype(np.float32) / 32768.0


def _float_to_pcm(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray | bytes, sample_rate: int) -> bytes:
    """A mono 16-bit WAV file holding ``samples`` (int16 array or raw PCM16 bytes)."""
    pcm = samples if isinstance(samples, bytes) else np.asarray(samples, dtype="<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def read_wav(path: str | PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a 16-bit WAV file as (int16 mono samples, sample rate); stereo is averaged to mono."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * wav.getsampwidth()}-bit")
        channels = wav.getnchannels()
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).round()
    return samples.astype(np.int16), rate


def rms(frame: np.ndarray) -> float:
    """Root-mean-square level of int16 samples, in int16 units."""
    return float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))


def decibels(level: float) -> float:
    """Level in dB of int16 full units (0 dB is an RMS of 1; silence clamps to 0 dB)."""
    return 20 * math.log10(max(level, 1.0))
