"""The espeak-ng synthesis worker: one pyttsx3 engine in a process of its own.

pyttsx3 is not thread-safe and ``pyttsx3.init()`` hands out one engine per
process, so :mod:`streaming.tts.espeak` runs each engine in its own process,
started as ``python -m streaming.tts.espeak_worker WORKDIR VOICE RATE`` and
spoken to in the frames of :mod:`streaming.tts.frames`.  This module imports
only the standard library and pyttsx3.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
from typing import Any

from streaming.tts.frames import run_worker


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


class EspeakSynthesizer:
    """The process's single pyttsx3 engine, set to one voice and rate."""

    def __init__(self, workdir: str, voice: str, rate: int) -> None:
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
        Under heavy load its run loop now and then ends before the file is
        written (seen at a worker's start-up, while other processes took both
        cores); one more run writes it.
        """
        try:
            self._save(text)
            if not os.path.exists(self._path):
                self._save(text)
            with open(self._path, "rb") as wav:
                return wav.read()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path)

    def _save(self, text: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self._engine.save_to_file(text, self._path)
            self._engine.runAndWait()


def load(workdir: str, args: list[str]) -> EspeakSynthesizer:
    voice, rate = args
    return EspeakSynthesizer(workdir, voice, int(rate))


if __name__ == "__main__":
    run_worker(load)
