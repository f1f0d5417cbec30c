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


def read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise SystemExit(f"{path}: need 16-bit mono PCM")
        return wav.readframes(wav.getnframes()), wav.getframerate()


async def send_audio(ws, pcm: bytes, rate: int, trailing_silence_s: float) -> None:
    """Send ``pcm`` in 100 ms frames at real-time pace, then silence so the turn ends."""
    step = int(rate * CHUNK_S) * 2
    pcm += b"\0\0" * int(rate * trailing_silence_s)
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), step)):
        await ws.send(pcm[offset : offset + step])
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
    async for raw in ws:
        message = json.loads(raw)
        print(describe(message, t0), flush=True)
        turns.see(message)
        if message["type"] == "tts_chunk" and args.save_audio:
            args.save_audio.mkdir(parents=True, exist_ok=True)
            name = f"{message['turn_id'][:8]}-{message['seq']:03d}.wav"
            (args.save_audio / name).write_bytes(base64.b64decode(message["audio_b64"]))
        if message["type"] == "error" and not message["recoverable"]:
            return


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


async def run(args: argparse.Namespace) -> None:
    pcm, rate = read_wav(args.wav)
    headers = {"Authorization": f"Bearer {args.token}"}
    async with websockets.connect(args.url, additional_headers=headers, max_size=None) as ws:
        t0 = time.monotonic()
        session = json.loads(await ws.recv())
        print(describe(session, t0))
        settings = requested_settings(args)
        if settings:
            await configure(ws, settings, t0)
        await ws.send(json.dumps({"type": "start", "sample_rate": rate}))
        turns = OpenTurns()
        receiver = asyncio.create_task(print_events(ws, args, t0, turns))
        try:
            # The trailing silence ends the last utterance; then wait until every turn is answered.
            sender = asyncio.create_task(send_audio(ws, pcm, rate, args.silence))
            await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                settled = asyncio.create_task(turns.settled.wait())
                await asyncio.wait([settled, receiver], return_when=asyncio.FIRST_COMPLETED)
                settled.cancel()
        finally:
            sender.cancel()
            receiver.cancel()


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
