"""Stream a WAV file to the voice server at real-time pace and print the events.

Usage:
    python examples/stream_wav.py speech.wav --token vt_... [--url ws://127.0.0.1:8000/ws]
                                  [--save-audio reply-dir/]

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
        return f"{at} metrics " + " ".join(f"{k}={message.get(k)}" for k in keys)
    shown = {k: v for k, v in message.items() if k not in ("type", "turn_id")}
    return f"{at} {kind} {json.dumps(shown)}"


async def run(args: argparse.Namespace) -> None:
    pcm, rate = read_wav(args.wav)
    headers = {"Authorization": f"Bearer {args.token}"}
    async with websockets.connect(args.url, additional_headers=headers, max_size=None) as ws:
        t0 = time.monotonic()
        session = json.loads(await ws.recv())
        print(describe(session, t0))
        await ws.send(json.dumps({"type": "start", "sample_rate": rate}))
        sender = asyncio.create_task(send_audio(ws, pcm, rate, args.silence))
        try:
            async for raw in ws:
                message = json.loads(raw)
                print(describe(message, t0), flush=True)
                if message["type"] == "tts_chunk" and args.save_audio:
                    args.save_audio.mkdir(parents=True, exist_ok=True)
                    name = f"{message['turn_id'][:8]}-{message['seq']:03d}.wav"
                    (args.save_audio / name).write_bytes(base64.b64decode(message["audio_b64"]))
                if message["type"] == "turn_complete" and sender.done():
                    break
                if message["type"] == "error" and not message["recoverable"]:
                    break
        finally:
            sender.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wav", type=Path)
    parser.add_argument("--token", required=True, help="API token (vt_...)")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    parser.add_argument("--silence", type=float, default=1.5, help="seconds of silence sent after the file")
    parser.add_argument("--save-audio", type=Path, help="directory for the reply's WAV chunks")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
