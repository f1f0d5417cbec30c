"""The process-wide engines: built once, shared by every session in the process."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from streaming.asr import ASREngine, get_shared_asr, start_loading
from streaming.config import StreamConfig
from streaming.llm import LLMEngine, build_llm
from streaming.tts import TTSEngine, get_shared_tts
from streaming.tts.voices import server_voice_config, session_voice
from streaming.turn_detection import TurnDetector
from streaming.turn_detection.detector import build_turn_detector


@dataclass(frozen=True)
class Engines:
    """The process-wide engines a session uses; shared, never owned by one session."""

    asr: ASREngine
    llm: LLMEngine
    tts: TTSEngine
    turn_detector: TurnDetector | None = None
    """Judges each pause with adaptive turn detection; None keeps the fixed silence rule."""
    voice: Callable[[str, str], TTSEngine] | None = None
    """The shared engine for a session's ``voice`` setting and language (:func:`session_voice`);
    None: every session speaks with ``tts``."""


@functools.cache
def shared_engines(config: StreamConfig) -> Engines:
    """The engines for ``config``; the Whisper model and the voices start loading in the background."""
    start_loading(config)
    tts = get_shared_tts(server_voice_config(config))
    tts.start()
    return Engines(
        asr=get_shared_asr(config),
        llm=build_llm(config),
        tts=tts,
        turn_detector=build_turn_detector(config),
        voice=functools.partial(session_voice, base=config),
    )


def engine_names(engines: Engines) -> dict[str, str]:
    names = {"asr": engines.asr.name, "llm": engines.llm.name, "tts": engines.tts.name}
    if engines.turn_detector is not None:
        names["turn_detector"] = engines.turn_detector.name
    return names
