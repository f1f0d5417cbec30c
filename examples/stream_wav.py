"""Stream a WAV file to the voice server at real-time pace and print the events.

Usage:
    python examples/stream_wav.py speech.wav --token vt_... [--url ws://127.0.0.1:8000/ws]
                                  [--save-audio reply-dir/]
                                  [--silence-ms 900] [--barge-in | --no-barge-in]
                                  [--turn-detection fixed|adaptive] [--system-prompt "..."]
                                  [--language de] [--voice espeak-ng]

The settings options send a ``configure`` message before streaming (docs/protocol.md,
"Session settings") and print the ``session_updated`` answer; a refused value ends the
client with the server's error.

When the connection ends under it (a server restart: ``SHUTTING_DOWN`` and 1012; the network: 1006),
the client reconnects with a growing delay, resumes its conversation by id, sends its settings and
``start`` again and streams on from where it was (docs/protocol.md, "Reconnecting"); it gives up
after a minute without a connection, and at once on the codes that refuse for good.

Create a token on the "API tokens" page or with
``python manage.py create_api_token USERNAME``. The WAV must be 16-bit mono at
8, 16, 22.05, 24, 32, 44.1 or 48 kHz; the server resamples to 16 kHz.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
import wave
from pathlib import Path

import websockets

CHUNK_S = 0.1
RETRY_DELAYS_S = (0.5, 1, 2, 4, 8)
GIVE_UP_AFTER_S = 60.0
FINAL_CLOSE_CODES = {4401, 4404, 4429, 4008}
"""Refused for good (credentials, conversation, session limit), or idle or too long: no reconnect."""


def read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise SystemExit(f"{path}: need 16-bit mono PCM")
        return wav.readframes(wav.getnframes()), wav.getframerate()


class Audio:
    """The WAV's samples and then silence, so the last turn ends; it remembers how much was sent, so
    a session that reconnects streams on from there."""

    def __init__(self, pcm: bytes, rate: int, trailing_silence_s: float) -> None:
        self.pcm = pcm + b"\0\0" * int(rate * trailing_silence_s)
        self.rate = rate
        self.sent = 0

    @property
    def done(self) -> bool:
        return self.sent >= len(self.pcm)

    async def stream(self, ws) -> None:
        """Send the rest in 100 ms frames at real-time pace."""
        step = int(self.rate * CHUNK_S) * 2
        started = time.monotonic()
        for index, offset in enumerate(range(self.sent, len(self.pcm), step)):
            await ws.send(self.pcm[offset : offset + step])
            self.sent = offset + step
            await asyncio.sleep(max(0.0, started + (index + 1) * CHUNK_S - time.monotonic()))


def describe(message: dict, t0: float) -> str:
    at = f"{time.monotonic() - t0:7.2f}s"
    kind = message["type"]
    if kind == "tts_chunk":
        duration = message.get("duration_s", 0)
        return f"{at} tts_chunk seq={message['seq']} {duration:.2f}s {message.get('text', '')!r}"
    if kind == "llm_token":
        return f"{at} llm_token {message['text']!r}{' (done)' if message['done'] else ''}"
    if kind == "metrics":
        keys = ("endpointing_ms", "llm_first_token_ms", "tts_first_audio_ms", "voice_to_voice_ms", "asr_rtf")
        keys += ("end_rule", "end_pause_ms")
        return f"{at} metrics " + " ".join(f"{k}={message.get(k)}" for k in keys)
    shown = {k: v for k, v in message.items() if k not in ("type", "turn_id")}
    return f"{at} {kind} {json.dumps(shown)}"


class OpenTurns:
    """The turns the server has begun and not yet ended, from the events of docs/protocol.md."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.transcribed: set[str] = set()
        self.settled = asyncio.Event()
        self.settled.set()

    def see(self, message: dict) -> None:
        kind, turn_id = message["type"], message.get("turn_id")
        if turn_id is None:
            return
        if kind == "speech_started":
            self.open.add(turn_id)
        elif kind == "final_transcript":
            self.open.add(turn_id)  # a typed turn has no speech_started
            self.transcribed.add(turn_id)
        elif kind == "turn_complete":
            self.open.discard(turn_id)
        elif kind == "speech_stopped" and message.get("reason") in ("cancelled", "too_short"):
            self.open.discard(turn_id)  # a click or a cough: no turn
        elif kind in ("info", "error") and turn_id not in self.transcribed:
            self.open.discard(turn_id)  # no words recognised, or recognition failed: no reply
        if self.open:
            self.settled.clear()
        else:
            self.settled.set()


async def print_events(ws, args: argparse.Namespace, t0: float, turns: OpenTurns) -> None:
    """Print every event until the server closes the socket (it does after an unrecoverable error)."""
    try:
        async for raw in ws:
            message = json.loads(raw)
            print(describe(message, t0), flush=True)
            turns.see(message)
            if message["type"] == "tts_chunk" and args.save_audio:
                args.save_audio.mkdir(parents=True, exist_ok=True)
                name = f"{message['turn_id'][:8]}-{message['seq']:03d}.wav"
                (args.save_audio / name).write_bytes(base64.b64decode(message["audio_b64"]))
    except websockets.ConnectionClosed:
        pass


def requested_settings(args: argparse.Namespace) -> dict:
    """The session settings given on the command line (those left out keep the server's)."""
    settings = {
        "silence_ms": args.silence_ms,
        "barge_in": args.barge_in,
        "turn_detection": args.turn_detection,
        "system_prompt": args.system_prompt,
        "language": args.language,
        "voice": args.voice,
    }
    return {name: value for name, value in settings.items() if value is not None}


async def configure(ws, settings: dict, t0: float) -> None:
    """Send ``configure`` and wait for its answer: ``session_updated``, or an ``error`` that ends the run."""
    await ws.send(json.dumps({"type": "configure", "settings": settings}))
    while True:
        message = json.loads(await ws.recv())
        print(describe(message, t0), flush=True)
        if message["type"] == "session_updated":
            return
        if message["type"] == "error":
            raise SystemExit(f"settings refused: {message['message']}")


async def converse(args: argparse.Namespace, audio: Audio, t0: float, conversation: str | None) -> tuple:
    """One connection: stream the rest of the audio and wait until every turn is answered.

    Returns the conversation's id and, if the server closed the socket before that, its close code.
    """
    url = args.url if conversation is None else f"{args.url}?conversation={conversation}"
    headers = {"Authorization": f"Bearer {args.token}"}
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        first = json.loads(await ws.recv())
        print(describe(first, t0), flush=True)
        if first["type"] != "session":  # refused: an error, then the close
            await print_events(ws, args, t0, OpenTurns())
            return conversation, ws.close_code
        settings = requested_settings(args)
        if settings:
            await configure(ws, settings, t0)
        await ws.send(json.dumps({"type": "start", "sample_rate": audio.rate}))
        turns = OpenTurns()
        receiver = asyncio.create_task(print_events(ws, args, t0, turns))
        sender = asyncio.create_task(audio.stream(ws))
        try:
            # The trailing silence ends the last utterance; then wait until every turn is answered.
            await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                settled = asyncio.create_task(turns.settled.wait())
                await asyncio.wait([settled, receiver], return_when=asyncio.FIRST_COMPLETED)
                settled.cancel()
        finally:
            sender.cancel()
            receiver.cancel()
        closed = receiver.done() and not receiver.cancelled()
        return first["conversation_id"], ws.close_code if closed else None


async def run(args: argparse.Namespace) -> None:
    pcm, rate = read_wav(args.wav)
    audio, t0, conversation, failures = Audio(pcm, rate, args.silence), time.monotonic(), None, 0
    last_connected = t0
    while True:
        try:
            conversation, code = await converse(args, audio, t0, conversation)
        except websockets.InvalidStatus as exc:
            if exc.response.status_code < 500:  # refused at the handshake (403: the token)
                raise SystemExit(f"refused: HTTP {exc.response.status_code}") from exc
            failures += 1  # a proxy with no worker up yet (502)
            print(f"{time.monotonic() - t0:7.2f}s cannot connect: {exc}", flush=True)
        except (OSError, websockets.ConnectionClosed) as exc:  # the server is restarting
            failures += 1
            print(f"{time.monotonic() - t0:7.2f}s cannot connect: {exc}", flush=True)
        else:
            if code is None:
                return
            if code in FINAL_CLOSE_CODES:
                raise SystemExit(f"closed by the server with {code}")
            failures, last_connected = 0, time.monotonic()
        if time.monotonic() - last_connected > GIVE_UP_AFTER_S:
            raise SystemExit(f"no connection for {GIVE_UP_AFTER_S:g} s")
        delay = RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)]
        print(f"{time.monotonic() - t0:7.2f}s reconnecting in {delay} s to {conversation}", flush=True)
        await asyncio.sleep(delay)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wav", type=Path)
    parser.add_argument("--token", required=True, help="API token (vt_...)")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    parser.add_argument("--silence", type=float, default=1.5, help="seconds of silence sent after the file")
    parser.add_argument("--save-audio", type=Path, help="directory for the reply's WAV chunks")
    settings = parser.add_argument_group("session settings (configure)")
    settings.add_argument(
        "--silence-ms", type=int, help="silence that ends a turn, within the server's bounds"
    )
    settings.add_argument(
        "--barge-in", action=argparse.BooleanOptionalAction, help="whether speech interrupts a reply"
    )
    settings.add_argument("--turn-detection", choices=("fixed", "adaptive"))
    settings.add_argument("--system-prompt", help='instructions for the assistant ("" for the server\'s)')
    settings.add_argument("--language", help="what the speaker speaks: a Whisper code such as de, or auto")
    settings.add_argument("--voice", help="auto, an installed Piper voice, or espeak-ng (settings_limits)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
