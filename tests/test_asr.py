"""Whisper ASR with the real bundled tiny.en model: accuracy, hallucinations, scheduling, loading."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from statistics import median

import huggingface_hub.constants
import numpy as np
import pytest

from streaming.asr import WhisperASR, get_shared_asr, model_readiness, start_loading
from streaming.asr.scheduler import BUDGET_BURST_S, ASRScheduler, FairQueue
from streaming.asr.whisper import LOCAL_MODEL_HINT, ModelSpec
from streaming.config import StreamConfig
from streaming.errors import ASRFailed, ASRTimeout, ModelLoadFailed
from tests.support.speech import clip_info, load_clip, noise, normalize_text, silence, word_error_rate

WER_CLIPS = [
    "ps_goforward",
    "lj_LJ001-0013",
    "librivox_sns01_0930",
    "ps_cards_005",
    "ls_1272-128104-0000",
    "lj_LJ001-0020",
]
LONG_CLIP = "lj_LJ001-0001"
# The machine is shared with other test runs: calls may be slow, so no ASR timeout applies in tests.
PATIENT = StreamConfig().replace(asr_timeout_s=300)
# The scheduling rules are easiest to pin down with one worker; two are tested on their own.
ONE_WORKER = PATIENT.replace(asr_workers=1, asr_cpu_threads=2)
OWNER = "test-session"


@pytest.fixture(scope="module")
def engine():
    # No partial budget here: scheduling tests must not depend on how busy the machine was earlier.
    asr = WhisperASR(ONE_WORKER, partial_share=None)
    asr.start_loading().result(timeout=120)
    yield asr
    asr.close()


async def test_two_workers_run_two_calls_at_once_and_partials_take_a_free_one():
    asr = WhisperASR(PATIENT.replace(asr_workers=2, asr_cpu_threads=1), partial_share=None)
    try:
        await asr.transcribe_final(load_clip("ps_goforward"), owner=OWNER)
        finals = [
            asyncio.create_task(asr.transcribe_final(load_clip(LONG_CLIP), owner=OWNER)) for _ in range(2)
        ]
        await until(lambda: asr.stats().running == 2)
        assert await asr.transcribe_partial(load_clip("ps_goforward"), owner=OWNER) is None
        assert all("printing" in result.text.lower() for result in await asyncio.gather(*finals))
        final = asyncio.create_task(asr.transcribe_final(load_clip(LONG_CLIP), owner=OWNER))
        await until(lambda: asr.stats().running == 1)
        partial = await asr.transcribe_partial(load_clip("ps_goforward"), owner=OWNER)
        assert partial is not None and normalize_text(partial.text) == "go forward ten meters"
        assert "printing" in (await final).text.lower()
    finally:
        asr.close()


async def until(condition) -> None:
    """Yield to the loop until ``condition()`` holds (the executor runs in other threads)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.002)
    pytest.fail("condition never held")


def test_model_spec_parsing(tmp_path):
    assert ModelSpec.parse("tiny.en") == ModelSpec("bundled", "tiny.en", "int8")
    assert ModelSpec.parse("tiny.en-int8") == ModelSpec("bundled", "tiny.en", "int8")
    assert ModelSpec.parse("small-int8") == ModelSpec("split", "small", "int8")
    assert ModelSpec.parse("base.en-float32") == ModelSpec("cached", "base.en", "float32")
    assert ModelSpec.parse("distil-large-v3") == ModelSpec("cached", "distil-large-v3", "int8")
    assert ModelSpec.parse("Systran/faster-whisper-small") == ModelSpec(
        "cached", "Systran/faster-whisper-small", "int8"
    )
    assert ModelSpec.parse(str(tmp_path)) == ModelSpec("directory", str(tmp_path), "int8")
    assert ModelSpec.parse(f"{tmp_path}-int16") == ModelSpec("directory", str(tmp_path), "int16")
    with pytest.raises(ModelLoadFailed, match="does not exist"):
        ModelSpec.parse(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadFailed, match="unknown Whisper model"):
        ModelSpec.parse("enormous")


async def test_bundled_model_transcribes_real_speech(engine):
    assert engine.ready and engine.readiness()[0] == "ready"
    results = [await engine.transcribe_final(load_clip(name), owner=OWNER) for name in WER_CLIPS]
    refs = [clip_info(name).reference_text for name in WER_CLIPS]
    assert word_error_rate(refs, [r.text for r in results]) <= 0.10
    assert normalize_text(results[0].text) == "go forward ten meters"
    assert all(r.text == r.text.strip() and r.compute_s > 0 for r in results)
    assert results[0].audio_s == pytest.approx(clip_info(WER_CLIPS[0]).duration_s, abs=0.01)


@pytest.mark.parametrize(
    "audio", [silence(3.0), noise(3.0, rms=100), noise(2.0, rms=3000, seed=7)], ids=["silence", "low", "loud"]
)
async def test_silence_and_noise_give_no_text(engine, audio):
    assert (await engine.transcribe_final(audio, owner=OWNER)).text == ""


async def test_quiet_real_speech_is_not_dropped(engine):
    quiet = (load_clip("ps_goforward") * 0.05).astype(np.int16)
    assert normalize_text((await engine.transcribe_final(quiet, owner=OWNER)).text) == "go forward ten meters"


async def test_partial_is_skipped_while_a_final_runs(engine):
    before = engine.stats()
    final = asyncio.create_task(engine.transcribe_final(load_clip(LONG_CLIP), owner=OWNER))
    await until(lambda: engine.stats().running == 1)
    assert await engine.transcribe_partial(load_clip("ps_goforward"), owner=OWNER) is None
    assert engine.stats().partials_skipped == before.partials_skipped + 1
    assert "printing" in (await final).text.lower()
    partial = await engine.transcribe_partial(load_clip("ps_goforward"), owner=OWNER)
    assert partial is not None and normalize_text(partial.text) == "go forward ten meters"


async def test_finals_queue_in_order_and_partials_never_wait(engine):
    finished: list[str] = []

    def track(label: str, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        task.add_done_callback(lambda _: finished.append(label))
        return task

    running = track("partial", engine.transcribe_partial(load_clip(LONG_CLIP), owner=OWNER))
    await until(lambda: engine.stats().running == 1)
    first = track("final-1", engine.transcribe_final(load_clip("ps_cards_005"), owner=OWNER))
    second = track("final-2", engine.transcribe_final(load_clip("ps_goforward"), owner=OWNER))
    await until(lambda: engine.stats().queued_finals == 2)
    assert await engine.transcribe_partial(load_clip("lj_LJ001-0013"), owner=OWNER) is None
    results = await asyncio.gather(running, first, second)
    assert finished == ["partial", "final-1", "final-2"]
    assert normalize_text(results[2].text) == "go forward ten meters"


async def test_cancelled_calls_are_discarded_and_the_engine_carries_on(engine):
    before = engine.stats()
    running = asyncio.create_task(engine.transcribe_final(load_clip(LONG_CLIP), owner=OWNER))
    await until(lambda: engine.stats().running == 1)
    queued = asyncio.create_task(engine.transcribe_final(load_clip("ps_cards_005"), owner=OWNER))
    await until(lambda: engine.stats().queued_finals == 1)
    queued.cancel()
    running.cancel()
    for task in (queued, running):
        with pytest.raises(asyncio.CancelledError):
            await task
    after = await engine.transcribe_final(load_clip("ps_goforward"), owner=OWNER)
    assert normalize_text(after.text) == "go forward ten meters"
    stats = engine.stats()
    assert (
        stats.finals_done == before.finals_done + 2
    )  # the running one finished unseen; the queued never ran
    assert stats.running == 0 and stats.queued_finals == 0


async def test_library_errors_become_asr_failed(engine):
    with pytest.raises(ASRFailed):
        await engine.transcribe_final(np.full((2, 8000), 3000, dtype=np.int16), owner=OWNER)
    assert (await engine.transcribe_final(load_clip("ps_goforward"), owner=OWNER)).text


async def test_partials_are_skipped_while_loading_and_over_budget_but_finals_never():
    share = 0.01
    asr = WhisperASR(PATIENT, partial_share=share)
    try:
        clip = load_clip("ps_goforward")
        assert await asr.transcribe_partial(clip, owner=OWNER) is None  # still loading: skipped, not held
        await asyncio.wrap_future(asr.start_loading())
        # Back-to-back partials run until the bucket is dry, however fast or slow the machine is.
        capacity = BUDGET_BURST_S * asr.workers
        began = time.monotonic()
        spent = last = 0.0
        while (result := await asr.transcribe_partial(clip, owner=OWNER)) is not None:
            spent, last = spent + result.compute_s, result.compute_s
            assert spent < 2 * capacity + 1, "partials are never skipped: the budget does not hold"
        refill = share * asr.workers * (time.monotonic() - began)
        assert spent >= capacity - 0.05  # skipped only once the bucket was spent...
        assert spent - last < capacity + refill + 0.05  # ...and none started on an empty bucket
        stats = asr.stats()
        assert stats.running == 0 and stats.queued_finals == 0 and stats.partials_skipped == 2
        assert normalize_text((await asr.transcribe_final(clip, owner=OWNER)).text) == "go forward ten meters"
    finally:
        asr.close()


def test_fair_queue_takes_owners_in_turn_and_keeps_each_owners_order():
    queue: FairQueue[str] = FairQueue()
    for item in ("f1", "f2", "f3", "f4"):
        queue.push("flood", item)
    queue.push("other", "o1")
    queue.push("other", "o2")
    queue.push("user", "u1")
    taken = [queue.pop(lambda item: True) for _ in range(7)]
    assert taken == ["f1", "o1", "u1", "f2", "o2", "f3", "f4"]
    assert queue.pop(lambda item: True) is None and not queue
    # An owner that refills its queue as it drains does not overtake an owner who came later.
    queue.push("flood", "f5")
    assert queue.pop(lambda item: True) == "f5"
    queue.push("flood", "f6")
    queue.push("user", "u2")
    assert [queue.pop(lambda item: True) for _ in range(2)] == ["u2", "f6"]
    # Refused items (cancelled calls) are dropped without using up their owner's turn.
    fresh: FairQueue[str] = FairQueue()
    for item in ("f1", "f2"):
        fresh.push("flood", item)
    fresh.push("user", "u1")
    assert fresh.pop(lambda item: item != "f1") == "f2"
    assert fresh.pop(lambda item: True) == "u1"


async def test_a_backlog_of_one_session_does_not_delay_another_sessions_final(engine):
    finished: list[str] = []

    async def final(owner: str, name: str, label: str) -> None:
        await engine.transcribe_final(load_clip(name), owner=owner)
        finished.append(label)

    flood = [asyncio.create_task(final("flood", LONG_CLIP, f"flood-{n}")) for n in range(6)]
    await until(lambda: engine.stats().running == 1 and engine.stats().queued_finals == 5)
    user = asyncio.create_task(final("user", "ps_goforward", "user"))
    await asyncio.gather(user, *flood)
    # One worker: the user's final waits only for the flood's call already running.
    assert finished.index("user") == 1, finished


async def test_the_timeout_counts_running_time_not_time_queued_behind_other_sessions():
    timeout_s = 2.0
    asr = WhisperASR(ONE_WORKER.replace(asr_timeout_s=timeout_s), partial_share=None)
    try:
        clip = load_clip("ps_goforward")
        await asyncio.wrap_future(asr.start_loading())
        call_s = median([(await asr.transcribe_final(clip, owner=OWNER)).compute_s for _ in range(3)])
        # Queue about twice the timeout's worth of other sessions' finals ahead of ours.
        ahead = min(200, math.ceil(2 * timeout_s / max(call_s, 0.01)))
        others = [asyncio.create_task(asr.transcribe_final(clip, owner=f"other-{n}")) for n in range(ahead)]
        await until(lambda: asr.stats().queued_finals == ahead - 1)
        began = time.monotonic()
        result = await asr.transcribe_final(clip, owner=OWNER)
        waited_s = time.monotonic() - began
        assert normalize_text(result.text) == "go forward ten meters"
        assert waited_s > timeout_s  # the test means something: ours was queued longer than the timeout
        assert all(normalize_text(r.text) == "go forward ten meters" for r in await asyncio.gather(*others))
    finally:
        asr.close()


async def test_a_call_that_runs_too_long_or_waits_too_long_ends_with_asr_timeout():
    # The scheduler itself with calls that block on an event: exact timings, no model needed.
    scheduler = ASRScheduler(workers=1, timeout_s=0.5, max_wait_s=1.0, partial_share=None)
    release = threading.Event()
    try:
        hung = asyncio.create_task(scheduler.final("a", lambda: release.wait(10)))
        queued = asyncio.create_task(scheduler.final("b", lambda: "ran"))
        with pytest.raises(ASRTimeout, match="ran longer than 0.5 s"):
            await hung
        assert scheduler.stats().running == 1  # a running call cannot be stopped: its result is dropped
        with pytest.raises(ASRTimeout, match="waited 1 s for a free worker"):
            await queued
        assert scheduler.stats().queued_finals == 0  # the timed-out waiter's call was dropped
        release.set()
        assert await scheduler.final("b", lambda: "ran") == "ran"
        assert scheduler.stats().finals_done == 2  # the hung call and the last one; never the dropped one
    finally:
        release.set()
        scheduler.close()


async def test_a_partial_asked_to_spare_a_worker_runs_only_when_one_more_is_free():
    scheduler = ASRScheduler(workers=2, timeout_s=5.0, max_wait_s=5.0, partial_share=None)
    release = threading.Event()
    try:
        assert await scheduler.partial(lambda: "both idle", spare=1) == "both idle"
        busy = asyncio.create_task(scheduler.final("a", lambda: release.wait(10)))
        await asyncio.sleep(0.05)
        assert scheduler.stats().running == 1
        assert await scheduler.partial(lambda: "ran", spare=1) is None  # the last free worker is kept
        assert await scheduler.partial(lambda: "ran") == "ran"
        release.set()
        await busy
    finally:
        release.set()
        scheduler.close()


async def test_missing_directory_fails_with_a_helpful_message(tmp_path):
    asr = WhisperASR(StreamConfig().replace(model_whisper=str(tmp_path / "no-such-model")))
    try:
        assert asr.readiness()[0] == "idle"
        with pytest.raises(ModelLoadFailed) as caught:
            await asr.transcribe_final(silence(1.0), owner=OWNER)
        assert caught.value.code == "MODEL_LOAD_FAILED" and not caught.value.recoverable
        state, detail = asr.readiness()
        assert state == "failed" and "does not exist" in detail and LOCAL_MODEL_HINT in detail
        with pytest.raises(ModelLoadFailed):
            await asr.transcribe_partial(silence(1.0), owner=OWNER)
    finally:
        asr.close()


async def test_directory_without_a_model_fails(tmp_path):
    asr = WhisperASR(StreamConfig().replace(model_whisper=str(tmp_path)))
    try:
        with pytest.raises(ModelLoadFailed, match="could not load"):
            await asr.transcribe_final(silence(1.0), owner=OWNER)
        assert asr.readiness()[0] == "failed"
    finally:
        asr.close()


async def test_a_name_not_in_the_hugging_face_cache_fails_and_is_never_downloaded(monkeypatch, tmp_path):
    # An empty cache makes the test independent of the machine's; nothing may reach for the hub.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    calls = []

    def cache_only(repo_id, **kwargs):
        calls.append(kwargs["local_files_only"])
        raise FileNotFoundError(repo_id)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cache_only)
    asr = WhisperASR(StreamConfig().replace(model_whisper="medium"))
    try:
        with pytest.raises(ModelLoadFailed, match="nothing is downloaded at run time") as caught:
            await asyncio.wait_for(asr.transcribe_final(silence(1.0), owner=OWNER), timeout=30)
        assert LOCAL_MODEL_HINT in caught.value.message
        assert asr.readiness()[0] == "failed"
        assert calls == [True]  # the cache was looked in, once; the hub never
    finally:
        asr.close()


async def test_one_shared_engine_per_process():
    config = StreamConfig()
    other = get_shared_asr(config.replace(asr_beam_size=3))
    shared = get_shared_asr(config)
    assert shared is get_shared_asr(StreamConfig()) and shared is not other
    start_loading(config)
    start_loading(config)
    assert model_readiness()[0] in ("loading", "ready")
    await asyncio.wrap_future(shared.start_loading())
    state, detail = model_readiness()
    assert state == "ready" and "tiny.en" in detail
