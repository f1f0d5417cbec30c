"""``python -m bench.turns``: how turn-taking rules trade speed for cut-offs, measured from outside.

Each clip of the bundled speech is spoken as is and with the longest pause inside it
lengthened to 300, 500 and 800 ms (its own quiet audio repeated), by two users at once,
to a server per setting (by default the fixed 700 ms and 400 ms silence rules, adaptive
detection with Smart Turn and with the text alone; choose others with
``--setting NAME:VAR=VALUE,...``). Per setting and pause it prints:

* cut-offs: utterances the server ended as two or more turns (the user was cut off), and
  of those, the ones cut at the clip's longest inner pause (the lengthened one): a new turn
  began as the speech resumed after it;
* voice-to-voice p50/p95: the clip's speech end to the first reply audio, client-side;
* WER of the joined finals against the reference, and the server's CPU per session.

With a real LLM (``make llm-server`` up, or ``--openai-base-url``) it also measures the
clips as recorded, by one user, against it with the fixed rule without and with
speculative replies, and with adaptive detection and speculation.

Benchmarks print figures; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.client import TurnRecord
from bench.corpus import Clip, bench_order, load_clips
from bench.endpoint import find_endpoint
from bench.load import run_level
from bench.server import BenchServer, base_env, prepare_database
from bench.stats import distribution
from streaming.audio import SAMPLE_RATE
from tests.support.speech import normalize_text, word_error_rate

PAUSES_MS = (None, 300, 500, 800)
"""None: the clip as recorded; otherwise its longest inner pause lengthened to that many ms."""
DEFAULT_SETTINGS = {
    "fixed-700": {"STREAM_VAD_SILENCE_MS": "700"},
    "fixed-400": {"STREAM_VAD_SILENCE_MS": "400"},
    "adaptive": {"STREAM_TURN_DETECTION": "adaptive"},
    "adaptive-text": {"STREAM_TURN_DETECTION": "adaptive", "STREAM_TURN_MODEL": "text"},
}
LLM_SETTINGS = {
    "llm-700": {"STREAM_SPECULATIVE_REPLY": "0"},
    "llm-700-spec": {"STREAM_SPECULATIVE_REPLY": "1"},
    "llm-adaptive-spec": {"STREAM_TURN_DETECTION": "adaptive", "STREAM_SPECULATIVE_REPLY": "1"},
}
"""With a real LLM (natural pauses, one user: llama.cpp's server answers one request at a time):
the reply's first token without and with speculation."""
CLIP_METRICS = (
    "end_rule",
    "end_pause_ms",
    "end_score",
    "endpointing_ms",
    "tts_first_audio_ms",
    "reply_speculative",
)
"""The server's account of each clip's last turn (``metrics``), kept per clip in the JSON report as
``server_<name>``."""
SESSIONS = 2
FRAME = SAMPLE_RATE // 50  # 20 ms
QUIET_DB = -30.0
"""A frame this far below the clip's loud frames (95th percentile) counts as a pause."""
MIN_PAUSE_MS = 60
"""Shorter quiet stretches are gaps inside words, not pauses a speaker makes."""
MIN_SPEECH_MS = 100
"""Shorter loud stretches (a click, a breath) do not begin or end the speech."""
RESUMED_WITHIN_S = (-0.1, 0.7)
"""A turn that began this close to the end of the clip's longest inner pause (client clock: the
VAD needs ~100 ms of voice, then the event travels) began where the speech resumed after it."""


@dataclass(frozen=True)
class Pause:
    start: int
    end: int

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000 / SAMPLE_RATE


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame indices of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def longest_inner_pause(clip: Clip) -> Pause | None:
    """The longest quiet stretch between the clip's first and last stretch of speech, or None.

    Speech is a run of loud frames at least ``MIN_SPEECH_MS`` long, so a click before the
    first word does not make the silence after it an "inner" pause.
    """
    samples = clip.samples[: clip.speech_end_sample].astype(np.float64)
    frames = len(samples) // FRAME
    if frames < 3:
        return None
    rms = np.sqrt(np.mean(samples[: frames * FRAME].reshape(frames, FRAME) ** 2, axis=1)) + 1e-9
    loud = 20 * np.log10(rms / np.percentile(rms, 95)) > QUIET_DB
    speech = [(a, b) for a, b in _runs(loud) if (b - a) * FRAME * 1000 / SAMPLE_RATE >= MIN_SPEECH_MS]
    if len(speech) < 2:
        return None
    first, last = speech[0][0], speech[-1][1]
    pauses = [Pause(a * FRAME, b * FRAME) for a, b in _runs(~loud[first:last])]
    pauses = [Pause(p.start + first * FRAME, p.end + first * FRAME) for p in pauses if p.ms >= MIN_PAUSE_MS]
    return max(pauses, key=lambda p: p.ms, default=None)


def lengthen_pause(clip: Clip, target_ms: int) -> Clip | None:
    """``clip`` with its longest inner pause at least ``target_ms`` long; None if it has none."""
    pause = longest_inner_pause(clip)
    if pause is None:
        return None
    missing = round((target_ms - pause.ms) * SAMPLE_RATE / 1000)
    if missing <= 0:
        return replace(clip, name=f"{clip.name}+{target_ms}")
    quiet = clip.samples[pause.start : pause.end]
    filler = np.tile(quiet, missing // len(quiet) + 1)[:missing]
    middle = (pause.start + pause.end) // 2
    samples = np.concatenate([clip.samples[:middle], filler, clip.samples[middle:]])
    return replace(
        clip,
        name=f"{clip.name}+{target_ms}",
        samples=samples,
        speech_end_s=clip.speech_end_s + missing / SAMPLE_RATE,
    )


def variants(clips: list[Clip], pause_ms: int | None) -> list[Clip]:
    """The clips for one pause setting (those without an inner pause are left out when lengthening)."""
    if pause_ms is None:
        return list(clips)
    return [c for c in (lengthen_pause(clip, pause_ms) for clip in clips) if c is not None]


def cut_at_longest_pause(record: TurnRecord, clip: Clip) -> bool:
    """Whether the server began a new turn where ``clip``'s speech resumed after its longest inner
    pause, i.e. ended the utterance in that pause."""
    pause = longest_inner_pause(clip)
    if pause is None or record.speech_end_at is None:
        return False
    resumed_at = record.speech_end_at + (pause.end - clip.speech_end_sample) / SAMPLE_RATE
    early, late = RESUMED_WITHIN_S
    return any(
        t.started_at is not None and resumed_at + early <= t.started_at <= resumed_at + late
        for t in record.turns[1:]
    )


def summarize(
    records: list[TurnRecord], clips: list[Clip], cpu_percent: float | None, sessions: int
) -> dict[str, Any]:
    """Cut-offs, voice-to-voice, WER and CPU per session of one setting and pause."""
    spoken = [r for r in records if r.status != "no_speech"]
    cut = [r.clip for r in spoken if sum(t.final_at is not None for t in r.turns) > 1]
    by_name = {clip.name: clip for clip in clips}
    at_pause = [r.clip for r in spoken if r.clip in cut and cut_at_longest_pause(r, by_name[r.clip])]
    v2v = [r.latencies_ms()["voice_to_voice_ms"] for r in spoken]
    refs = [normalize_text(r.reference) for r in spoken]
    hyps = [normalize_text(r.text) for r in spoken]
    return {
        "utterances": len(records),
        "cut_offs": len(cut),
        "cut_off_pct": round(100 * len(cut) / len(spoken), 1) if spoken else None,
        "cut_clips": cut,
        "cut_at_pause": len(at_pause),
        "cut_at_pause_pct": round(100 * len(at_pause) / len(spoken), 1) if spoken else None,
        "voice_to_voice_ms": distribution(v2v),
        "wer_pct": round(100 * word_error_rate(refs, hyps), 2) if spoken else None,
        "lost": sum(r.status in ("no_speech", "timeout") for r in records),
        "cpu_per_session_pct": None if cpu_percent is None else round(cpu_percent / sessions, 1),
        "clips": {r.clip: _clip_report(r) for r in spoken},
    }


def _clip_report(record: TurnRecord) -> dict[str, Any]:
    """One clip's figures (the JSON report only): where its last turn's time went, and why it ended."""
    metrics = (record.turns[-1].metrics or {}) if record.turns else {}
    return {
        **{key: record.latencies_ms()[key] for key in ("voice_to_voice_ms", "endpointing_ms")},
        "text": record.text,
        "turns": len(record.turns),
        **{f"server_{key}": metrics.get(key) for key in CLIP_METRICS},
    }


async def measure(
    setting: dict[str, str],
    clips: list[Clip],
    pauses: tuple[int | None, ...],
    workdir: Path,
    sessions: int = SESSIONS,
) -> dict[str, Any]:
    """Every pause variant, spoken by ``sessions`` users at once, to a server started with ``setting``."""
    token = prepare_database(workdir)
    results: dict[str, Any] = {}
    with BenchServer(workdir, base_env(workdir, setting)) as server:
        for pause_ms in pauses:
            spoken = variants(clips, pause_ms)
            plans = [spoken[start::sessions] for start in range(sessions)]  # each clip once
            run = await run_level(server, token, plans, seed=1)
            label = "natural" if pause_ms is None else f"{pause_ms} ms"
            results[label] = summarize(run.turns, spoken, run.process.get("cpu_percent"), sessions)
            shown = {key: value for key, value in results[label].items() if key != "clips"}
            print(f"[turns] {label}: {json.dumps(shown)}", file=sys.stderr, flush=True)
    return results


def render(report: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'setting':<12} {'pause':<8} {'utt':>4} {'cut-offs':>9} {'at pause':>9}"
        f" {'v2v p50':>8} {'v2v p95':>8} {'WER %':>6} {'lost':>5} {'CPU %/session':>14}"
    ]
    for name, by_pause in report.items():
        for pause, row in by_pause.items():
            v2v = row["voice_to_voice_ms"]
            lines.append(
                f"{name:<12} {pause:<8} {row['utterances']:>4}"
                f" {row['cut_offs']:>3} ({row['cut_off_pct']:>4}%)"
                f" {row['cut_at_pause']:>3} ({row['cut_at_pause_pct']:>4}%)"
                f" {v2v['p50']!s:>8} {v2v['p95']!s:>8} {row['wer_pct']!s:>6} {row['lost']:>5}"
                f" {row['cpu_per_session_pct']!s:>14}"
            )
    return "\n".join(lines)


def _setting(text: str) -> tuple[str, dict[str, str]]:
    name, sep, assignments = text.partition(":")
    pairs = [part.partition("=") for part in assignments.split(",") if part]
    if not sep or not name or any(not eq or not var for var, eq, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME:VAR=VALUE[,VAR=VALUE...], got {text!r}")
    return name, {var: value for var, _, value in pairs}


def _pauses(text: str) -> tuple[int | None, ...]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated milliseconds, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected milliseconds >= 0, got {text!r}")
    return tuple(value or None for value in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.turns", description=__doc__)
    parser.add_argument("--clips", type=int, default=12, help="clips of the bundled speech (default 12)")
    parser.add_argument("--setting", type=_setting, action="append", help="NAME:VAR=VALUE,... (repeatable)")
    parser.add_argument(
        "--pauses",
        type=_pauses,
        default=PAUSES_MS,
        help="ms, 0 = as recorded (default 0,300,500,800)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/turns.json"))
    parser.add_argument(
        "--openai-base-url",
        help="a real LLM for the speculation runs (the default run tries llama.cpp on :8080)",
    )
    args = parser.parse_args(argv)
    settings = dict(args.setting) if args.setting else DEFAULT_SETTINGS
    clips = load_clips(bench_order()[: args.clips])
    runs = {name: (setting, args.pauses, SESSIONS) for name, setting in settings.items()}
    # The default run looks for a real LLM; a run of chosen settings only when given one.
    endpoint = None
    if args.openai_base_url or not args.setting:
        endpoint, how = find_endpoint(args.openai_base_url, None)
        print(f"[turns] real LLM: {how}", file=sys.stderr, flush=True)
    if endpoint is not None:
        llm = endpoint.server_env()
        runs |= {name: (llm | setting, (None,), 1) for name, setting in LLM_SETTINGS.items()}
    report: dict[str, dict[str, Any]] = {}
    for name, (setting, pauses, sessions) in runs.items():
        with tempfile.TemporaryDirectory(prefix="bench-turns-") as workdir:
            report[name] = asyncio.run(measure(setting, clips, pauses, Path(workdir), sessions))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"settings": {n: s for n, (s, _, _) in runs.items()}, "results": report}, indent=2)
    )
    print(render(report))
    print(f"results written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
