"""The synthesis worker process: one pyttsx3 (espeak-ng) engine answering over its stdin/stdout.

pyttsx3 is not thread-safe and ``pyttsx3.init()`` hands out one engine per
process, so :mod:`streaming.tts.espeak` runs each engine in its own process, started
as ``python -m streaming.tts.espeak_worker VOICE RATE WORKDIR``.  A fresh interpreter
(rather than ``multiprocessing``) imports neither the server's ``__main__`` nor
Django, and inherits none of the Whisper model's threads.  This module imports
only the standard library and pyttsx3.

Messages in both directions are frames: one kind byte, a 4-byte big-endian
length, then the payload.  The parent sends ``TEXT`` or ``QUIT``; the worker
answers ``READY`` (voice id) once, then ``WAV`` or ``ERROR`` per text.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import io
import os
import shutil
import struct
import sys
from typing import IO, Any

TEXT, QUIT, READY, WAV, ERROR = b"T", b"Q", b"R", b"W", b"E"
_HEADER = struct.Struct(">cI")


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


def load_espeak() -> str:
    """Make libespeak-ng loadable before pyttsx3 looks for it; return where it came from.

    espeakng-loader ships the library and its data: loading it with ``RTLD_GLOBAL``
    lets pyttsx3's ``LoadLibrary("libespeak-ng.so.1")`` find it by soname.  Without
    that package the system espeak-ng is used.
    """
    try:
        import espeakng_loader
    except ImportError:
        return "system espeak-ng"
    ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_GLOBAL)
    os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
    return "espeakng-loader"


def fix_synth_size() -> None:
    """Make pyttsx3 pass espeak-ng the real length of the text.

    pyttsx3 2.99's ``_espeak.Synth`` passes ``espeak_Synth`` a size of ten times
    the text length, and espeak-ng (queuing the text for its synthesis thread)
    copies that many bytes: it reads far past the end of the buffer, which
    garbles words or, for long phrases, crashes the process in ``memcpy``.
    The replacement passes the text's length plus its terminating NUL.
    """
    from pyttsx3.drivers import _espeak

    def synth(text, position=0, position_type=_espeak.POS_CHARACTER, end_position=0, flags=0, user_data=None):
        if isinstance(text, str):
            text = text.encode("utf-8")
        return _espeak.cSynth(
            text, len(text) + 1, position, position_type, end_position, flags, None, user_data
        )

    _espeak.Synth = synth


class Synthesizer:
    """The process's single pyttsx3 engine, set to one voice and rate."""

    def __init__(self, voice: str, rate: int, workdir: str) -> None:
        load_espeak()
        fix_synth_size()
        import pyttsx3

        self._engine: Any = pyttsx3.init()
        self._path = os.path.join(workdir, "phrase.wav")
        voice_id = self._find_voice(voice)
        self._engine.setProperty("voice", voice_id)
        self._engine.setProperty("rate", rate)
        # pyttsx3 queues property changes until its first run loop; one short
        # synthesis applies them (and loads the voice data) before any real phrase.
        self.synthesize("ready")
        self.voice: str = self._engine.getProperty("voice")
        if self.voice != voice_id:
            raise RuntimeError(f"espeak-ng kept voice {self.voice!r} instead of {voice_id!r}")

    def _find_voice(self, wanted: str) -> str:
        """The espeak voice id for ``wanted``: an id ("gmw/en-us"), a language ("en-us") or a name."""
        key = wanted.lower()
        for voice in self._engine.getProperty("voices"):
            names = {voice.id, voice.id.rsplit("/", 1)[-1], voice.name.lower()}
            names.update(language.lower() for language in voice.languages)
            if key in names:
                return voice.id
        raise RuntimeError(f"espeak-ng has no voice {wanted!r}")

    def synthesize(self, text: str) -> bytes:
        """WAV bytes for ``text``.

        Exactly one ``save_to_file`` per ``runAndWait``: queuing several keeps
        only the last.  The driver prints each saved path; that is discarded.
        """
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self._engine.save_to_file(text, self._path)
                self._engine.runAndWait()
            with open(self._path, "rb") as wav:
                return wav.read()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path)


def serve(requests: IO[bytes], replies: IO[bytes], voice: str, rate: int, workdir: str) -> None:
    """Answer each ``TEXT`` frame with ``WAV`` or ``ERROR`` until ``QUIT`` or end of input."""
    try:
        synthesizer = Synthesizer(voice, rate, workdir)
    except Exception as exc:  # reported to the parent, which raises TTSFailed
        write_frame(replies, ERROR, f"pyttsx3 could not start: {exc}".encode())
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


def main() -> None:
    voice, rate, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # A crash inside espeak-ng then leaves a traceback in the server's log.
    faulthandler.enable()
    # Frames own the real stdout; anything else writing to fd 1 (the espeak
    # library included) lands on stderr instead of corrupting them.
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    try:
        serve(os.fdopen(0, "rb", buffering=0), replies, voice, rate, workdir)
    finally:
        # The parent removes the directory of a worker it kills; a worker that
        # outlives its parent (stdin closed) removes its own.
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
