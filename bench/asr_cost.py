"""Whisper cost measured in-process with the pipeline's own engine: seconds per call and RTF.

Partials are the utterance so far (1-3 s of audio, greedy); finals are whole
clips with the final decoding options.  With several workers, that many
callers run at once, so the figures include the contention the server sees.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from bench.corpus import Clip
from bench.procstat import OtherLoad
from bench.stats import distribution, median
from streaming.asr import Transcription, WhisperASR
from streaming.audio import SAMPLE_RATE
from streaming.config import StreamConfig

PARTIAL_SECONDS = (1.0, 2.0, 3.0)


def _engine(config: StreamConfig) -> WhisperASR:
    # No partial budget: this measures the model, not the scheduler's rationing.
    engine = WhisperASR(config, partial_share=None)
    engine.start_loading().result(timeout=300)
    return engine


async def _callers(
    engine: WhisperASR, jobs: list[tuple[np.ndarray, bool]]
) -> tuple[list[Transcription], float]:
    """Run ``jobs`` (audio, final) with ``engine.workers`` callers at once; results and wall time."""
    queue: asyncio.Queue[tuple[np.ndarray, bool]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    results: list[Transcription] = []

    async def caller(owner: int) -> None:
        while not queue.empty():
            audio, final = queue.get_nowait()
            call = engine.transcribe_final if final else engine.transcribe_partial
            result = await call(audio, owner=owner)
            if result is None:
                raise RuntimeError("a partial was skipped although a worker was free")
            results.append(result)

    began = time.perf_counter()
    await asyncio.gather(*(caller(owner) for owner in range(engine.workers)))
    return results, time.perf_counter() - began


async def measure_config(clips: list[Clip], config: StreamConfig, calls: int) -> dict[str, Any]:
    """Per-call seconds and throughput of partial- and final-sized calls for one threads × workers."""
    engine = _engine(config)
    try:
        return await measure_engine(engine, clips, calls)
    finally:
        engine.close()


async def measure_engine(engine: WhisperASR, clips: list[Clip], calls: int) -> dict[str, Any]:
    """:func:`measure_config` on a loaded engine (``engine.workers`` callers at once)."""
    load = OtherLoad()
    count = calls * engine.workers
    partials = [
        (clips[i % len(clips)].samples[: round(PARTIAL_SECONDS[i % 3] * SAMPLE_RATE)], False)
        for i in range(count)
    ]
    finals = [(clips[i % len(clips)].samples, True) for i in range(count)]
    partial_results, partial_wall = await _callers(engine, partials)
    final_results, final_wall = await _callers(engine, finals)
    return {
        "cpu_threads": engine.cpu_threads,
        "workers": engine.workers,
        "partial_s": _seconds(partial_results),
        "final_s": _seconds(final_results),
        "final_rtf": median((r.compute_s / r.audio_s for r in final_results), 3),
        "final_audio_s": median((r.audio_s for r in final_results), 2),
        "partials_per_s": round(len(partial_results) / partial_wall, 2),
        "finals_per_s": round(len(final_results) / final_wall, 2),
        "other_cpu_percent": load.percent(),
    }


def _seconds(results: list[Transcription]) -> dict[str, Any]:
    summary = distribution(r.compute_s * 1000 for r in results)
    return {
        key: (value if key == "count" else round((value or 0) / 1000, 3)) for key, value in summary.items()
    }


async def measure(
    clips: list[Clip], threads: list[int], workers: list[int], calls: int
) -> list[dict[str, Any]]:
    """:func:`measure_config` for every threads × workers combination, one model loaded at a time."""
    base = StreamConfig()
    return [
        await measure_config(clips, base.replace(asr_cpu_threads=t, asr_workers=w), calls)
        for t in threads
        for w in workers
    ]


async def batch_transcripts(clips: list[Clip], config: StreamConfig) -> list[Transcription]:
    """Each clip transcribed whole, in one final call, with the server's model and options."""
    engine = _engine(config)
    try:
        return [await engine.transcribe_final(clip.samples, owner="batch") for clip in clips]
    finally:
        engine.close()
