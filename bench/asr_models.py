"""``python -m bench.asr_models``: the Whisper models side by side, each in a process of its own.

For each model (default tiny.en and base; small when it can be assembled): load time, the
process's memory once the model is loaded (and what loading added), seconds per partial- and
final-sized call with ``--threads`` × ``--workers`` (default 1 × 2, the server's default, so the
figures include two calls contending for 2 cores: :func:`bench.asr_cost.measure_engine`), and
the word error rate of one final call per bundled English clip.  The model's own files decide
the download: the bundled tiny.en comes with ``make setup``, base with ``make models``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.asr_cost import measure_engine
from bench.corpus import bench_order, load_clips, word_error_rate
from bench.procstat import MB, peak_rss_bytes
from streaming.asr import WhisperASR
from streaming.config import StreamConfig


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def measure_model(model: str, threads: int, workers: int, calls: int, clips: int) -> dict[str, Any]:
    """One model's figures, measured in this process (run it in a fresh one: memory is per process)."""
    config = StreamConfig().replace(
        model_whisper=model, asr_cpu_threads=threads, asr_workers=workers, asr_timeout_s=300
    )
    corpus = load_clips(bench_order()[:clips])
    before = _rss_bytes()
    engine = WhisperASR(config, partial_share=None)
    began = time.perf_counter()
    engine.start_loading().result(timeout=600)
    load_s = time.perf_counter() - began
    loaded = _rss_bytes()
    try:
        finals = [await engine.transcribe_final(clip.samples, owner="wer") for clip in corpus]
        cost = await measure_engine(engine, corpus, calls)
    finally:
        engine.close()
    return {
        "model": model,
        "load_s": round(load_s, 2),
        "rss_loaded_mb": round(loaded / MB),
        "rss_model_mb": round((loaded - before) / MB),
        "rss_peak_mb": round(peak_rss_bytes(os.getpid()) / MB),
        "clips": len(corpus),
        "wer": round(word_error_rate([c.reference for c in corpus], [r.text for r in finals]), 4),
        **cost,
    }


def _row(result: dict[str, Any]) -> str:
    partial, final = result["partial_s"], result["final_s"]
    return (
        f"| {result['model']} | {partial['p50']:.3f} / {partial['p95']:.3f} | {final['p50']:.3f} / "
        f"{final['p95']:.3f} | {result['final_rtf']} | {result['finals_per_s']} | "
        f"{100 * result['wer']:.1f} % | "
        f"{result['rss_model_mb']} MB ({result['rss_peak_mb']} MB peak) | {result['load_s']} s |"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asr_models", description=__doc__)
    parser.add_argument("models", nargs="*", default=["tiny.en", "base"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=6, help="calls per worker and size (default 6)")
    parser.add_argument("--clips", type=int, default=40, help="English clips for the WER (default 40)")
    parser.add_argument("--one", action="store_true", help="measure the one model here and print JSON")
    args = parser.parse_args(argv)
    if args.one:
        figures = measure_model(args.models[0], args.threads, args.workers, args.calls, args.clips)
        result = asyncio.run(figures)
        print(json.dumps(result))
        return 0
    print(
        f"| model | partial p50 / p95 (s) | final p50 / p95 (s) | final RTF | finals/s "
        f"({args.threads} thread x {args.workers} workers) | WER ({args.clips} clips) | memory | load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models:
        common = ["--threads", str(args.threads), "--workers", str(args.workers), "--calls", str(args.calls)]
        child = subprocess.run(
            [sys.executable, "-m", "bench.asr_models", "--one", model, *common, "--clips", str(args.clips)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(f"| {model} | failed: {child.stderr.strip().splitlines()[-1]} |")
            continue
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(_row(result), flush=True)
        print(json.dumps(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
