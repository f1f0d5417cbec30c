"""``python -m bench`` (``make bench``): benchmark the real server; table on stdout, JSON to a file.

The full run takes about 15-20 minutes on 2 cores; ``--quick`` takes a few.
Pipeline settings are read from the environment as by the server itself, e.g.
``STREAM_ASR_WORKERS=2 STREAM_ASR_CPU_THREADS=1 make bench``, or given with
``--server-env NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from bench.corpus import bench_order
from bench.report import render
from bench.runner import BenchOptions, log, run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIPS = 16


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv: list[str]) -> tuple[BenchOptions, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 4 clips, sessions 1,2,4, one repeat, fewer ASR calls",
    )
    parser.add_argument(
        "--clips", type=int, help=f"clips in the latency/accuracy run (default {DEFAULT_CLIPS})"
    )
    parser.add_argument("--clip-names", help="comma-separated clip names for the latency run instead")
    parser.add_argument("--sessions", type=_ints, help="concurrent session counts (default 1,2,4,8,16,24)")
    parser.add_argument("--session-clips", type=int, help="clips each capacity session speaks (default 3)")
    parser.add_argument("--repeats", type=int, help="runs of each measurement; medians reported (default 2)")
    parser.add_argument("--asr-threads", type=_ints, help="cpu_threads for the ASR cost (default 1,2)")
    parser.add_argument("--asr-workers", type=_ints, help="workers for the ASR cost (default 1,2)")
    parser.add_argument("--asr-calls", type=int, help="calls per worker and size (default 6; 0 skips)")
    parser.add_argument(
        "--server-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for the benchmarked server (repeatable)",
    )
    parser.add_argument("--openai-base-url", help="an OpenAI-compatible server for the real-LLM latency run")
    parser.add_argument("--openai-model", help="its model name (default: the first it lists)")
    parser.add_argument("--think", type=float, default=0.8, help="seconds of silence before each utterance")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, help="JSON file (default bench-results/<timestamp>.json)")
    args = parser.parse_args(argv)

    quick = args.quick
    clips = args.clips or (4 if quick else DEFAULT_CLIPS)
    names = (
        [n.strip() for n in args.clip_names.split(",") if n.strip()]
        if args.clip_names
        else bench_order()[:clips]
    )
    calls = args.asr_calls if args.asr_calls is not None else (2 if quick else 6)
    options = BenchOptions(
        latency_clips=names,
        sessions=args.sessions or ([1, 2, 4] if quick else [1, 2, 4, 8, 16, 24]),
        session_clips=args.session_clips or (2 if quick else 3),
        repeats=args.repeats or (1 if quick else 2),
        asr_threads=(args.asr_threads or [1, 2]) if calls else [],
        asr_workers=(args.asr_workers or [1, 2]) if calls else [],
        asr_calls=calls,
        server_env=dict(args.server_env),
        openai_base_url=args.openai_base_url,
        openai_model=args.openai_model,
        think_s=args.think,
        seed=args.seed,
    )
    output = args.output or ROOT / "bench-results" / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    return options, output


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options, output = parse_args(argv)
    results = run(options, shlex.join(["python", "-m", "bench", *argv]))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))
    log(f"results written to {output}")


if __name__ == "__main__":
    main()
