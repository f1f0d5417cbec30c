"""The process-wide engines: built once, shared by every session in the process."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from streaming.asr import ASREngine, get_shared_asr, start_loading
from streaming.config import StreamConfig
from streaming.llm import LLMEngine, build_llm
from streaming.tts import TTSEngine, get_shared_tts


@dataclass(frozen=True)
class Engines:
    """The process-wide engines a session uses; shared, never owned by one session."""

    asr: ASREngine
    llm: LLMEngine
    tts: TTSEngine


@functools.cache
def shared_engines(config: StreamConfig) -> Engines:
    """The engines for ``config``; the Whisper model starts loading in the background."""
    start_loading(config)
    return Engines(asr=get_shared_asr(config), llm=build_llm(config), tts=get_shared_tts(config))


def engine_names(engines: Engines) -> dict[str, str]:
    return {"asr": engines.asr.name, "llm": engines.llm.name, "tts": engines.tts.name}
