"""The synthesis worker protocol: framed messages over a worker process's stdin and stdout.

Each engine's worker (:mod:`streaming.tts.espeak_worker`, :mod:`streaming.tts.piper_worker`)
is a fresh interpreter started as ``python -m MODULE WORKDIR ARGS...`` by
:mod:`streaming.tts.workers`.  A fresh interpreter (rather than ``multiprocessing``)
imports neither the server's ``__main__`` nor Django and inherits none of the
Whisper model's threads.  This module imports only the standard library.

Messages in both directions are frames: one kind byte, a 4-byte big-endian
length, then the payload.  The parent sends ``TEXT`` or ``QUIT``; the worker
answers ``READY`` (the voice it loaded) once, then ``WAV`` or ``ERROR`` per text.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import struct
import sys
from collections.abc import Callable
from typing import IO, Protocol

TEXT, QUIT, READY, WAV, ERROR = b"T", b"Q", b"R", b"W", b"E"
_HEADER = struct.Struct(">cI")


class Synthesizer(Protocol):
    """What a worker serves: one loaded voice turning text into a mono 16-bit WAV."""

    voice: str

    def synthesize(self, text: str) -> bytes: ...


def write_frame(stream: IO[bytes], kind: bytes, payload: bytes = b"") -> None:
    """Write one frame and flush it."""
    stream.write(_HEADER.pack(kind, len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[bytes, bytes]:
    """Read one frame; raise EOFError if the other side has gone."""
    kind, length = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return kind, _read_exactly(stream, length)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError("the pipe closed mid-frame" if chunks else "the pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(requests: IO[bytes], replies: IO[bytes], load: Callable[[], Synthesizer]) -> None:
    """Load the synthesizer, then answer each ``TEXT`` frame until ``QUIT`` or end of input."""
    try:
        synthesizer = load()
    except Exception as exc:  # reported to the parent, which raises TTSFailed
        write_frame(replies, ERROR, f"the voice could not start: {exc}".encode())
        return
    write_frame(replies, READY, synthesizer.voice.encode())
    while True:
        try:
            kind, payload = read_frame(requests)
        except EOFError:
            return
        if kind != TEXT:
            return
        try:
            write_frame(replies, WAV, synthesizer.synthesize(payload.decode()))
        except Exception as exc:  # reported to the parent, which raises TTSFailed
            write_frame(replies, ERROR, f"{type(exc).__name__}: {exc}".encode())


def run_worker(load: Callable[[str, list[str]], Synthesizer]) -> None:
    """A worker's ``main``: serve ``load(workdir, args)`` over stdin/stdout, from ``sys.argv``."""
    workdir, args = sys.argv[1], sys.argv[2:]
    # A crash inside a native library then leaves a traceback in the server's log.
    faulthandler.enable()
    # Frames own the real stdout; anything else writing to fd 1 (a native
    # library included) lands on stderr instead of corrupting them.
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    try:
        serve(os.fdopen(0, "rb", buffering=0), replies, lambda: load(workdir, args))
    finally:
        # The parent removes the directory of a worker it kills; a worker that
        # outlives its parent (stdin closed) removes its own.
        shutil.rmtree(workdir, ignore_errors=True)
