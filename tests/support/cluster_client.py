"""A speaking client for the cluster test: real speech at real-time pace, reconnecting like the chat page.

It speaks one clip after another (100 ms frames, real time), then streams silence until the
clip's ``final_transcript`` arrives, so every final belongs to the utterance it ends.  When the
connection ends under it (1012 after ``SHUTTING_DOWN``, or a dropped socket when a worker is
killed) it reconnects through nginx with ``?conversation=<id>``, sends ``start`` again and goes
on with the next clip, as docs/protocol.md (Reconnecting) asks of clients.  It records what a
test needs to judge loss: each connection (the worker nginx chose, how it ended) and each
utterance (whether the server heard speech, which finals ended it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field

import numpy as np
import websockets

from tests.support.cluster import UPSTREAM_HEADER
from tests.support.speech import load_clip, silence

FRAME_BYTES = 3200  # 100 ms of 16 kHz mono PCM
FRAME_S = 0.1
FINAL_WAIT_S = 8.0  # silence streamed after a clip while its final is awaited
NOT_A_TURN = {"too_short", "cancelled", "No speech recognised."}


class Refused(Exception):
    """The server refused the session with an error instead of the session event."""


@dataclass
class Connection:
    """One WebSocket connection of a client, through nginx to one worker."""

    upstream: str
    opened: float
    resumed: bool
    conversation_id: str
    closed: float | None = None
    close_code: int | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class Utterance:
    """One clip spoken on one connection, and what the server made of it."""

    clip: str
    connection: Connection
    started: float
    heard: bool = False  # the server sent speech_started
    finals: list[dict] = field(default_factory=list)
    # Why a heard utterance may rightly end without a final: speech_stopped reasons, info messages.
    outcomes: list[str] = field(default_factory=list)
    ended: float | None = None

    @property
    def lost(self) -> bool:
        """The server heard speech and neither sent its final transcript nor said why there is none.

        A fragment cut by a shutdown may be too short for a turn (``too_short``) or hold no words
        Whisper recognises (``info`` "No speech recognised."): the server finalized it, so it is
        not lost.
        """
        return self.heard and not self.finals and not set(self.outcomes) & NOT_A_TURN


class SpeakingClient:
    """One user's conversation through the cluster, reconnecting and resuming until told to stop."""

    def __init__(self, url: str, token: str, clips: list[str]) -> None:
        self.url = url
        self.token = token
        self.clips = clips
        self.conversation_id: str | None = None
        self.connections: list[Connection] = []
        self.utterances: list[Utterance] = []
        self.refusals: list[str] = []
        self.failures: list[str] = []  # connections that failed or ended under us, for diagnosis
        self._spoken = 0

    @property
    def finals(self) -> list[dict]:
        return [final for utterance in self.utterances for final in utterance.finals]

    @property
    def current(self) -> Connection | None:
        return self.connections[-1] if self.connections else None

    def describe(self) -> str:
        """A line per connection (worker, how it ended, its utterances) for a failure message."""
        lines = [f"refusals {self.refusals}", *self.failures[-8:]]
        for c in self.connections:
            spoken = [
                (u.clip, u.heard, len(u.finals), u.outcomes) for u in self.utterances if u.connection is c
            ]
            lines.append(
                f"  {c.upstream} opened {c.opened:.1f} closed {c.closed} {c.close_code} {c.errors} {spoken}"
            )
        return "\n".join(lines)

    def finals_since(self, moment: float) -> int:
        return sum(1 for u in self.utterances if u.ended and u.ended > moment and u.finals)

    async def run(self, stop: asyncio.Event) -> None:
        """Speak until ``stop`` is set, reconnecting whenever the connection ends under us."""
        delay = 0.1
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 0.1
            except (OSError, Refused, websockets.InvalidHandshake, websockets.ConnectionClosed) as exc:
                self.failures.append(f"{time.monotonic():.1f} {type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)  # the chat page waits longer each time; a test need not
                delay = min(delay * 2, 1.0)

    async def _session(self, stop: asyncio.Event) -> None:
        url = self.url if self.conversation_id is None else f"{self.url}?conversation={self.conversation_id}"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            session = json.loads(await ws.recv())
            if session["type"] == "error":  # refused: a stopping worker sends SHUTTING_DOWN, 1012
                self.refusals.append(session["code"])
                raise Refused(session["code"])
            assert session["type"] == "session", session
            self.conversation_id = session["conversation_id"]
            connection = Connection(
                upstream=ws.response.headers.get(UPSTREAM_HEADER, ""),
                opened=time.monotonic(),
                resumed=session["resumed"],
                conversation_id=session["conversation_id"],
            )
            self.connections.append(connection)
            reader = asyncio.create_task(self._read(ws, connection))
            try:
                await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
                while not stop.is_set() and not reader.done():
                    await self._speak(ws, connection, reader)
                if not reader.done():
                    await ws.send(json.dumps({"type": "stop"}))
                    await ws.close()
            except websockets.ConnectionClosed:
                pass
            finally:
                await asyncio.wait([reader], timeout=10)
                reader.cancel()
                # A close other than 1000 ends the reader with ConnectionClosedError: expected here.
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await reader
                connection.closed = time.monotonic()
                connection.close_code = ws.close_code if ws.close_code is not None else 1006

    async def _speak(self, ws, connection: Connection, reader: asyncio.Task) -> None:
        """One clip at real-time pace, then silence until its final arrives (or the socket ends)."""
        clip = self.clips[self._spoken % len(self.clips)]
        self._spoken += 1
        utterance = Utterance(clip=clip, connection=connection, started=time.monotonic())
        self.utterances.append(utterance)
        speech = np.concatenate([silence(0.3), load_clip(clip)]).astype(np.int16).tobytes()
        frames = [speech[i : i + FRAME_BYTES] for i in range(0, len(speech), FRAME_BYTES)]
        quiet = silence(FRAME_S).tobytes()
        spoken = utterance.started + len(frames) * FRAME_S
        for n in itertools.count():
            if reader.done():
                break
            if n >= len(frames):
                # A final from before the speech ended closes only a first part (a cut-off); the
                # clip is over once one arrives after it, or after FINAL_WAIT_S of silence.
                if (
                    any(f["_at"] >= spoken for f in utterance.finals)
                    or time.monotonic() > spoken + FINAL_WAIT_S
                ):
                    break
            await ws.send(frames[n] if n < len(frames) else quiet)
            # Paced by the clock, not by sleeps, so a busy moment does not slow the speech down.
            await asyncio.sleep(max(0.0, utterance.started + (n + 1) * FRAME_S - time.monotonic()))
        utterance.ended = time.monotonic()

    async def _read(self, ws, connection: Connection) -> None:
        """Attribute speech and finals, by turn id, to the utterance they belong to; note errors."""
        turns: dict[str, Utterance] = {}
        async for raw in ws:
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            kind = message["type"]
            if kind == "speech_started" and self.utterances:
                turns[message["turn_id"]] = self.utterances[-1]
                self.utterances[-1].heard = True
            elif kind == "final_transcript" and message["turn_id"] in turns:
                turns[message["turn_id"]].finals.append({**message, "_at": time.monotonic()})
            elif kind in ("speech_stopped", "info") and message.get("turn_id") in turns:
                turns[message["turn_id"]].outcomes.append(message.get("reason") or message["message"])
            elif kind == "error":
                connection.errors.append(message["code"])
