"""Probes of issue 10 against a real daphne: an error storm, and SIGTERM with several users talking.

``python -m bench.abuse`` prints, for each probe and repeat:

* storm: 2,000 audio frames sent before ``start``: the ``error`` events the client got, the
  errors they account for (their ``count``) and the ``ErrorEvent`` rows stored;
* sigterm: ``--users`` users mid-utterance (a 3 s silence limit keeps them mid-utterance), then
  SIGTERM: each socket's close code, the finals the clients saw and the turns stored.

``--project /path/to/other/checkout`` serves another worktree (for "before" figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import threading
from pathlib import Path

import numpy as np
import websockets

from bench.corpus import load_clips
from bench.server import ROOT, BenchServer, base_env, prepare_database

STORM_FRAMES = 2000
CLIP = "ps_goforward"


async def _storm(server: BenchServer, token: str) -> tuple[int, int]:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(server.url, additional_headers=headers, max_size=None) as ws:
        await ws.recv()  # the session event
        for _ in range(STORM_FRAMES):
            await ws.send(b"\0" * 320)
        errors = []
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 3))
                if message["type"] == "error":
                    errors.append(message)
        except TimeoutError:
            pass
    return len(errors), sum(error.get("count", 1) for error in errors)


async def _talk(server: BenchServer, token: str, speech: bytes) -> tuple[int | None, bool]:
    """Start an utterance that never pauses; collect events until the server closes the socket."""
    headers = {"Authorization": f"Bearer {token}"}
    final = False
    async with websockets.connect(server.url, additional_headers=headers, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        for start in range(0, len(speech), 3200):
            await ws.send(speech[start : start + 3200])
        try:
            async for raw in ws:
                final = final or json.loads(raw)["type"] == "final_transcript"
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, final


async def _sigterm(server: BenchServer, token: str, users: int) -> tuple[list[int | None], int]:
    clip = load_clips([CLIP])[0].samples
    speech = np.concatenate([np.zeros(4800, dtype=np.int16), clip]).tobytes()
    sessions = [asyncio.create_task(_talk(server, token, speech)) for _ in range(users)]
    await asyncio.sleep(6)  # every utterance in progress: the silence limit is 3 s
    stopper = threading.Thread(target=server.stop)  # SIGTERM, then waits for daphne to exit
    stopper.start()
    results = await asyncio.wait_for(asyncio.gather(*sessions), 90)
    await asyncio.to_thread(stopper.join)
    return [code for code, _ in results], sum(final for _, final in results)


def _stored(database: Path, table: str) -> int:
    with sqlite3.connect(database) as db:
        return db.execute(f"SELECT count(*) FROM conversations_{table}").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=4, help="users talking at SIGTERM")
    args = parser.parse_args()
    for repeat in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
            workdir = Path(tmp)
            token = prepare_database(workdir, root=args.project)
            with BenchServer(workdir, base_env(workdir, {}), root=args.project) as server:
                events, accounted = asyncio.run(_storm(server, token))
            rows = _stored(workdir / "bench.sqlite3", "errorevent")
            print(f"storm   #{repeat}: {events} error events for {accounted} errors; {rows} rows stored")
        with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
            workdir = Path(tmp)
            token = prepare_database(workdir, root=args.project)
            env = base_env(workdir, {"STREAM_VAD_SILENCE_MS": "3000", "STREAM_BARGE_IN": "0"})
            server = BenchServer(workdir, env, root=args.project)
            server.start()
            try:
                codes, finals = asyncio.run(_sigterm(server, token, args.users))
            finally:
                server.stop()
            stored = _stored(workdir / "bench.sqlite3", "turn")
            print(
                f"sigterm #{repeat}: close codes {[int(c) if c else None for c in codes]}; "
                f"finals seen {finals}/{args.users}; turns stored {stored}/{args.users}"
            )


if __name__ == "__main__":
    main()
