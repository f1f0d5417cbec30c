"""``python -m bench.flood``: one client floods a real server with audio while another talks at real time.

Issue 10's probe, repeatable: on a fresh daphne per phase (``bench/server.py``),

* ``quiet`` — the talker alone speaks ``--talk-clips`` clips at real time
  (``bench/client.py``: it waits for each reply and listens to it);
* ``socket`` — a flooder sends ``--flood-s`` seconds of looped real speech as
  fast as the socket allows, in the largest frames the server accepts, then
  waits for its transcripts; the talker starts ``--talk-delay-s`` later;
* ``paced`` — the flooder sends at ``--paced-speed`` times real time for as long
  as the talker talks (at most ``--flood-s`` seconds of audio).

For each phase it prints the talker's endpointing (its speech end to its
``final_transcript``, on the client's clock) p50/p95/max, the flooder's outcome
(utterances started, finals, no speech, dropped as too short, errors by code,
utterances without any outcome when it left) and the server's RSS at the start,
its peak (the kernel's high-water mark) and ``--settle-s`` after both clients left.

``--root /work/baseline`` serves another checkout (the "before" figures); the
clients and this script always come from the tree they are run from.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from bench.client import Conversation
from bench.corpus import Clip, bench_order, load_clips
from bench.procstat import MB, Sampler, peak_rss_bytes, sample
from bench.server import ROOT, BenchServer, base_env, prepare_database
from bench.stats import distribution
from streaming.audio import SAMPLE_RATE

PAUSE_S = 0.8
_DROPPED = re.compile(r"\(([\d.]+) s in this session so far\)")
PACED_FRAME_S = 0.1
PHASES = ("quiet", "socket", "paced")


@dataclass
class FloodOutcome:
    """What the flooding client saw of its own utterances."""

    audio_sent_s: float = 0.0
    send_wall_s: float = 0.0
    started: set[str] = field(default_factory=set)
    finals: set[str] = field(default_factory=set)
    no_speech: set[str] = field(default_factory=set)
    too_short: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    """Errors by code, each ``error`` event counting as the number of errors it stands for."""
    error_events: int = 0
    dropped_s: float | None = None
    """Audio the server said it dropped (its running total in the latest AUDIO_TOO_FAST)."""
    close_code: int | None = None
    last_message_at: float = field(default_factory=time.monotonic)

    def summary(self) -> dict[str, Any]:
        ended = self.finals | self.no_speech | self.too_short | self.failed
        return {
            "audio_sent_s": round(self.audio_sent_s, 1),
            "send_wall_s": round(self.send_wall_s, 2),
            "utterances": len(self.started),
            "finals": len(self.finals),
            "no_speech": len(self.no_speech),
            "too_short": len(self.too_short),
            "asr_errors": len(self.failed),
            "without_outcome": len(self.started - ended),
            "errors": dict(self.errors.most_common()),
            "error_events": self.error_events,
            "dropped_s": self.dropped_s,
            "close_code": self.close_code,
        }

    def on_message(self, message: dict[str, Any]) -> None:
        self.last_message_at = time.monotonic()
        kind, turn_id = message.get("type"), message.get("turn_id")
        if kind == "speech_started":
            self.started.add(turn_id)
        elif kind == "final_transcript":
            self.finals.add(message.get("id") or turn_id)
        elif kind == "info" and turn_id:
            self.no_speech.add(turn_id)
        elif kind == "speech_stopped" and message.get("reason") in ("too_short", "cancelled"):
            self.too_short.add(turn_id)
        elif kind == "error":
            self.error_events += 1
            self.errors[str(message.get("code"))] += int(message.get("count", 1))
            dropped = _DROPPED.search(str(message.get("message", "")))
            if message.get("code") == "AUDIO_TOO_FAST" and dropped:
                self.dropped_s = float(dropped.group(1))
            if turn_id and str(message.get("code", "")).startswith("ASR"):
                self.failed.add(turn_id)


def flood_audio(clips: list[Clip], seconds: float) -> np.ndarray:
    """The clips with pauses between them, looped to ``seconds`` of 16 kHz audio."""
    pause = np.zeros(round(PAUSE_S * SAMPLE_RATE), dtype=np.int16)
    one_pass = np.concatenate([part for clip in clips for part in (clip.samples, pause)])
    return np.resize(one_pass, round(seconds * SAMPLE_RATE))


async def flood(
    url: str,
    token: str,
    audio: np.ndarray,
    *,
    speed: float,
    stop: asyncio.Event,
    wait_s: float,
    settle_s: float,
) -> FloodOutcome:
    """Send ``audio`` at ``speed`` x real time (0: as fast as the socket allows) until done or ``stop``."""
    outcome = FloodOutcome()
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        session = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "start", "sample_rate": SAMPLE_RATE}))
        receiver = asyncio.create_task(_receive(ws, outcome), name="flood-receive")
        data = audio.tobytes()
        step = (
            session["limits"]["max_message_bytes"] if speed == 0 else round(PACED_FRAME_S * SAMPLE_RATE) * 2
        )
        began = time.monotonic()
        try:
            for offset in range(0, len(data), step):
                if stop.is_set() or receiver.done():
                    break
                await ws.send(data[offset : offset + step])
                outcome.audio_sent_s = (offset + min(step, len(data) - offset)) / 2 / SAMPLE_RATE
                if speed:
                    await asyncio.sleep(max(0.0, began + outcome.audio_sent_s / speed - time.monotonic()))
            outcome.send_wall_s = time.monotonic() - began
            # Stay while the talker talks, then wait for the transcripts of what was sent
            # until the server has been quiet for ``settle_s`` (at most ``wait_s``).
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([stopped, receiver], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and not receiver.done():
                if time.monotonic() - outcome.last_message_at > settle_s:
                    break
                await asyncio.sleep(0.5)
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        await ws.close()
    outcome.close_code = ws.close_code
    return outcome


async def _receive(ws: Any, outcome: FloodOutcome) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            if isinstance(raw, str):
                outcome.on_message(json.loads(raw))


async def run_phase(phase: str, server: BenchServer, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """One phase on ``server``: the talker, with the flooder unless ``phase`` is quiet."""
    talk = load_clips(bench_order()[: args.talk_clips])
    flood_clips = load_clips(bench_order()[args.talk_clips :] or bench_order())
    stop = asyncio.Event()
    flooder: asyncio.Task[FloodOutcome] | None = None
    async with Sampler(server.pid) as sampler:
        if phase != "quiet":
            speed = 0.0 if phase == "socket" else args.paced_speed
            flooder = asyncio.create_task(
                flood(
                    server.url,
                    token,
                    flood_audio(flood_clips, args.flood_s),
                    speed=speed,
                    stop=stop,
                    wait_s=args.flood_wait_s,
                    settle_s=args.settle_s,
                )
            )
            await asyncio.sleep(args.talk_delay_s)
        talker = await Conversation(server.url, token, talk).run()
        stop.set()
        outcome = await flooder if flooder is not None else None
        await asyncio.sleep(args.settle_s)
    rss = [s.rss_main for s in sampler.samples]
    endpointing = [turn.latencies_ms()["endpointing_ms"] for turn in talker.turns]
    return {
        "phase": phase,
        "talker": {
            "endpointing_ms": distribution(endpointing),
            "turns": len(talker.turns),
            "statuses": dict(Counter(turn.status for turn in talker.turns)),
            "errors": talker.error_codes,
            "session_error": talker.error,
        },
        "flooder": outcome.summary() if outcome is not None else None,
        "rss_mb": {
            "start": round(rss[0] / MB, 1),
            "peak": round(max(max(rss), peak_rss_bytes(server.pid)) / MB, 1),
            "end": round(sample(server.pid).rss_main / MB, 1),
        },
    }


def print_phase(result: dict[str, Any]) -> None:
    talker, rss, flooder = result["talker"], result["rss_mb"], result["flooder"]
    ms = talker["endpointing_ms"]
    print(
        f"{result['phase']:>6}: talker endpointing p50 {ms['p50']} / p95 {ms['p95']} / max {ms['max']} ms "
        f"over {ms['count']} turns {talker['statuses']}, errors {talker['errors']}; "
        f"RSS start {rss['start']} / peak {rss['peak']} / end {rss['end']} MB"
    )
    if flooder is not None:
        print(
            f"        flooder: {flooder['audio_sent_s']} s of audio in {flooder['send_wall_s']} s; "
            f"{flooder['utterances']} utterances -> {flooder['finals']} finals, "
            f"{flooder['no_speech']} no speech, "
            f"{flooder['too_short']} too short, {flooder['asr_errors']} ASR errors, "
            f"{flooder['without_outcome']} without outcome; errors {flooder['errors']} "
            f"in {flooder['error_events']} events; server dropped {flooder['dropped_s']} s; "
            f"closed {flooder['close_code']}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="project checkout to serve (default: this one)"
    )
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--talk-clips", type=int, default=10, help="clips the talker speaks (default 10)")
    parser.add_argument("--flood-s", type=float, default=2000, help="seconds of audio flooded (default 2000)")
    parser.add_argument("--paced-speed", type=float, default=20, help="paced flood speed (default 20x)")
    parser.add_argument("--talk-delay-s", type=float, default=1.0, help="flood head start (default 1 s)")
    parser.add_argument("--flood-wait-s", type=float, default=120, help="flooder's wait for transcripts")
    parser.add_argument("--settle-s", type=float, default=10, help="quiet time before leaving / measuring")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    results = []
    for phase in args.phases.split(","):
        if phase not in PHASES:
            parser.error(f"unknown phase {phase!r}")
        with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
            workdir = Path(tmp)
            token = prepare_database(workdir, root=args.root)
            with BenchServer(workdir, base_env(workdir, {}), name=phase, root=args.root) as server:
                result = asyncio.run(run_phase(phase, server, token, args))
        print_phase(result)
        results.append(result)
    if args.output:
        args.output.write_text(json.dumps({"root": str(args.root), "phases": results}, indent=2))


if __name__ == "__main__":
    main()
