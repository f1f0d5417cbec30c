"""PCM decoding: resampling every supported rate, odd-byte carry, WAV helpers."""

from __future__ import annotations

import numpy as np
import pytest

from streaming.audio import SAMPLE_RATE, SUPPORTED_RATES, PcmDecoder, pcm_to_float, read_wav, wav_bytes
from streaming.errors import UnsupportedSampleRate
from tests.support.speech import AUDIO_DIR, load_clip


def tone(frequency: float, seconds: float, rate: int, amplitude: float = 12000) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * frequency * t) * amplitude).astype("<i2").tobytes()


def decode(rate: int, data: bytes, step: int) -> np.ndarray:
    decoder = PcmDecoder(rate)
    parts = [decoder.feed(data[i : i + step]) for i in range(0, len(data), step)]
    return np.concatenate([*parts, decoder.flush()])


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_tone_keeps_frequency_and_length_at_every_rate(rate):
    out = decode(rate, tone(440, 2.0, rate), step=4097)
    assert out.dtype == np.int16
    assert abs(len(out) - 2 * SAMPLE_RATE) <= 16
    assert dominant_frequency(out.astype(np.float64), SAMPLE_RATE) == pytest.approx(440, abs=1.0)
    steady = out[SAMPLE_RATE // 2 : -SAMPLE_RATE // 2].astype(np.float64)
    assert np.sqrt(np.mean(steady**2)) == pytest.approx(12000 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize("rate", [16000, 44100, 48000, 8000])
def test_byte_by_byte_equals_all_at_once(rate):
    data = tone(440, 0.1, rate) + tone(1000, 0.05, rate)
    whole = decode(rate, data, step=len(data))
    assert np.array_equal(decode(rate, data, step=1), whole)
    assert np.array_equal(decode(rate, data, step=333), whole)


def test_decoder_starts_a_new_stream_after_flush():
    data = tone(440, 0.5, 48000)
    decoder = PcmDecoder(48000)
    first = np.concatenate([decoder.feed(data), decoder.flush()])
    second = np.concatenate([decoder.feed(data), decoder.flush()])
    assert np.array_equal(first, second) and len(first) == SAMPLE_RATE // 2


def test_odd_trailing_byte_is_carried_into_next_frame():
    decoder = PcmDecoder(16000)
    data = np.array([1000, -2000, 3000], dtype="<i2").tobytes()
    first = decoder.feed(data[:3])
    second = decoder.feed(data[3:])
    assert first.tolist() == [1000]
    assert second.tolist() == [-2000, 3000]


def test_native_rate_passes_real_speech_through_unchanged():
    clip = load_clip("ps_goforward")
    assert np.array_equal(decode(16000, clip.tobytes(), step=5120), clip)


def test_unsupported_rate_is_rejected_with_the_supported_list():
    with pytest.raises(UnsupportedSampleRate) as caught:
        PcmDecoder(11025)
    assert caught.value.code == "UNSUPPORTED_SAMPLE_RATE"
    assert "11025" in caught.value.message
    assert all(str(rate) in caught.value.message for rate in SUPPORTED_RATES)


def test_wav_round_trip(tmp_path):
    clip = load_clip("ps_goforward")
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(clip, SAMPLE_RATE))
    samples, rate = read_wav(path)
    assert rate == SAMPLE_RATE
    assert np.array_equal(samples, clip)
    assert wav_bytes(clip.tobytes(), SAMPLE_RATE) == path.read_bytes()


def test_read_wav_reads_the_shared_corpus():
    samples, rate = read_wav(AUDIO_DIR / "lj_LJ001-0013.wav")
    assert rate == 16000 and samples.dtype == np.int16
    assert len(samples) / rate == pytest.approx(2.585, abs=0.001)


def test_pcm_to_float_range():
    floats = pcm_to_float(np.array([-32768, 0, 16384, 32767], dtype=np.int16))
    assert floats.dtype == np.float32
    assert floats.tolist() == pytest.approx([-1.0, 0.0, 0.5, 32767 / 32768])
