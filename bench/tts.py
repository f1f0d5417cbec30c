"""``python -m bench.tts``: what each speech engine costs and how well its voice is understood.

For every setting (espeak-ng; Piper as 1 worker × 2 threads and as 2 workers × 1
thread), side by side in one run, with the server's own engine:

- start-up of the workers, and their resident memory after the run;
- synthesis time per phrase, one at a time (one user) and two at a time (two
  replies speaking), and the real-time factor;
- intelligibility: each reply's audio, its phrases played one after another as
  the browser plays them, transcribed by the project's own Whisper (tiny.en);
  word error rate against the reply's text.

The phrases are what users hear: the offline responder's replies to the bundled
recordings as the pipeline transcribes them (it echoes Whisper's words, in Whisper's
mixed case and punctuation, not the corpus's all-capitals references), plus typical
short assistant answers, cut into phrases by the pipeline's own phrase aggregator.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from bench.corpus import bench_order, load_clips, word_error_rate
from bench.procstat import peak_rss_bytes
from bench.stats import distribution, median
from streaming.asr import WhisperASR
from streaming.audio import SAMPLE_RATE, pcm_to_float
from streaming.config import StreamConfig
from streaming.llm import ChatMessage
from streaming.llm.offline import OfflineResponder
from streaming.phrases import PhraseAggregator
from streaming.tts import get_shared_tts

SETTINGS: dict[str, dict[str, Any]] = {
    "espeak-ng": {"tts_engine": "pyttsx3", "tts_worker_processes": 2},
    "piper-1x2": {"tts_engine": "piper", "tts_worker_processes": 1, "tts_cpu_threads": 2},
    "piper-2x1": {"tts_engine": "piper", "tts_worker_processes": 2, "tts_cpu_threads": 1},
}
"""Engine, worker processes × inference threads: the default (1 × 2) and the alternative (2 × 1)."""
ASSISTANT_ANSWERS = (
    "Sure. The capital of Australia is Canberra, not Sydney.",
    "It takes about eight minutes for sunlight to reach the Earth.",
    "I'd start with something simple, like a walk after dinner, and build from there.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Good question! A leap year has three hundred and sixty-six days.",
    "You could try turning it off and on again; if that doesn't help, check the cable.",
)


async def replies(config: StreamConfig, clips: int, asr: WhisperASR) -> list[list[str]]:
    """The offline responder's replies and typical answers, each cut into phrases as the pipeline does."""
    responder = OfflineResponder()
    earlier = [ChatMessage("user", "Hello."), ChatMessage("assistant", "Hello!")]
    said = [
        ChatMessage("user", (await asr.transcribe_final(clip.samples, owner="replies")).text)
        for clip in load_clips(bench_order()[:clips])
    ]
    # One conversation: the introduction once, then the answers to what was said.
    texts = [responder.reply(said[:1])] + [responder.reply([*earlier, message]) for message in said[1:]]
    cut = []
    for text in dict.fromkeys([*texts, *ASSISTANT_ANSWERS]):
        aggregator = PhraseAggregator(config.tts_max_phrase_length)
        cut.append([phrase for phrase in [*aggregator.push(text), aggregator.flush()] if phrase])
    return cut


def _pcm_16k(wav: bytes) -> np.ndarray:
    """The WAV's samples as the pipeline hears a client: 16-bit PCM at 16 kHz."""
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = pcm_to_float(np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16))
    resampled = soxr.resample(samples, rate, SAMPLE_RATE)
    return np.clip(np.round(resampled * 32767), -32768, 32767).astype(np.int16)


def _seconds(pcm: np.ndarray) -> float:
    return len(pcm) / SAMPLE_RATE


async def _heard(name: str, cut: list[list[str]], pcm: list[np.ndarray], asr: WhisperASR) -> list[str]:
    """What Whisper hears of each reply: its phrases' audio played one after another."""
    heard, start = [], 0
    for reply in cut:
        audio = np.concatenate(pcm[start : start + len(reply)])
        start += len(reply)
        heard.append((await asr.transcribe_final(audio, owner=name)).text)
    return heard


async def measure(
    name: str, config: StreamConfig, cut: list[list[str]], asr: WhisperASR, wer_runs_wanted: int = 1
) -> dict[str, Any]:
    """One setting's cost and intelligibility; a voice that samples its speech (Piper does) says
    each reply differently every time, so its word error rate is the median of ``wer_runs_wanted``
    syntheses (the misheard examples are the first's)."""
    tts = get_shared_tts(config)
    texts = [phrase for reply in cut for phrase in reply]
    try:
        startup = await tts.warm_up()
        one_ms, pcm = [], []
        for text in texts:
            began = time.perf_counter()
            wav = await tts.synthesize(text)
            one_ms.append(1000 * (time.perf_counter() - began))
            pcm.append(_pcm_16k(wav))

        async def timed(text: str) -> float:
            began = time.perf_counter()
            await tts.synthesize(text)
            return 1000 * (time.perf_counter() - began)

        two_ms = [ms for pair in range(0, len(texts) - 1, 2) for ms in await asyncio.gather(
            timed(texts[pair]), timed(texts[pair + 1])
        )]  # fmt: skip
        rss_mb = [round(peak_rss_bytes(pid) / 2**20) for pid in tts.worker_pids]
        spoken = [" ".join(reply) for reply in cut]
        heard = await _heard(name, cut, pcm, asr)
        wer_runs = [100 * word_error_rate(spoken, heard)]
        for _ in range(1, wer_runs_wanted):
            again = [_pcm_16k(await tts.synthesize(text)) for text in texts]
            wer_runs.append(100 * word_error_rate(spoken, await _heard(name, cut, again, asr)))
    finally:
        await tts.aclose()
    audio_s = [_seconds(samples) for samples in pcm]
    return {
        "engine": tts.name,
        "voice": tts.label,
        "startup_s": median(startup, 2),
        "phrase_ms_one_at_a_time": distribution(one_ms),
        "phrase_ms_two_at_a_time": distribution(two_ms),
        "rtf": median((ms / 1000 / s for ms, s in zip(one_ms, audio_s, strict=True)), 3),
        "words_per_minute": median(len(t.split()) / s * 60 for t, s in zip(texts, audio_s, strict=True)),
        "worker_rss_mb": rss_mb,
        "wer_pct": median(wer_runs, 2),
        "wer_pct_runs": [round(wer, 2) for wer in wer_runs],
        "misheard": [(t, h) for t, h in zip(spoken, heard, strict=True) if word_error_rate([t], [h]) > 0],
    }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=16, help="recordings whose echo replies are spoken")
    parser.add_argument(
        "--wer-runs",
        type=int,
        default=5,
        help="syntheses of each reply; the WER is their median",
    )
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"of {', '.join(SETTINGS)}")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    base = StreamConfig.from_env({})
    asr = WhisperASR(base, partial_share=None)
    asr.start_loading().result(timeout=300)
    results = {}
    try:
        cut = await replies(base, args.clips, asr)
        for name in args.settings.split(","):
            results[name] = await measure(name, base.replace(**SETTINGS[name]), cut, asr, args.wer_runs)
            row = results[name]
            print(
                f"{name:15} {row['engine']:24} start {row['startup_s']} s  phrase p50/p95 "
                f"{row['phrase_ms_one_at_a_time']['p50']}/{row['phrase_ms_one_at_a_time']['p95']} ms "
                f"(2 at once p50 {row['phrase_ms_two_at_a_time']['p50']})  RTF {row['rtf']}  "
                f"{row['words_per_minute']} wpm  RSS/worker {row['worker_rss_mb']} MB  "
                f"WER {row['wer_pct']}% (runs {', '.join(map(str, row['wer_pct_runs']))})",
                flush=True,
            )
    finally:
        asr.close()
    print(f"{len(cut)} replies, {sum(map(len, cut))} phrases; misheard examples:")
    for name, row in results.items():
        for text, heard in row["misheard"][:3]:
            print(f"  {name}: {text!r} -> {heard!r}")
    if args.output:
        args.output.write_text(json.dumps({"replies": cut, "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
