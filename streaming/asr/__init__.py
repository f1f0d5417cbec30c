"""Speech recognition: the engine interface, and the Whisper engine every session shares.

A session needs only :class:`ASREngine` and :class:`Transcription`.  The one
implementation lives in :mod:`streaming.asr.whisper` (model loading and decoding),
with :mod:`streaming.asr.models` (which models exist offline, where their files are),
:mod:`streaming.asr.scheduler` (which call runs when: finals first, in turn per
session), :mod:`streaming.asr.window` (the bounded encoder window) and
:mod:`streaming.asr.filters` (what Whisper makes up) beside it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Transcription:
    """Text Whisper heard (stripped; empty if no real speech), audio length and compute time."""

    text: str
    audio_s: float
    compute_s: float
    language: str | None = None
    """The language Whisper decoded in (the one detected when the setting is ``auto``); None if unknown."""


class ASREngine(Protocol):
    """What a session needs from speech recognition (int16 16 kHz audio in, text out).

    ``owner`` identifies the caller (one per session): an engine shared by
    sessions keeps each owner's finals in order and serves owners in turn.
    ``language`` is the caller's Whisper language code or ``auto``; None: the engine's own.
    A partial is skipped (None) unless a worker is free, and with ``spare`` unless that many
    more stay free for other sessions' finals.
    """

    name: str

    @property
    def ready(self) -> bool: ...

    async def transcribe_final(
        self, audio: np.ndarray, *, owner: Hashable, language: str | None = None
    ) -> Transcription: ...

    async def transcribe_partial(
        self, audio: np.ndarray, *, owner: Hashable, language: str | None = None, spare: int = 0
    ) -> Transcription | None: ...


# Imported last: the implementation imports the interface above.
from streaming.asr.whisper import (  # noqa: E402
    WhisperASR,
    get_shared_asr,
    model_readiness,
    process_stats,
    start_loading,
)

__all__ = [
    "ASREngine",
    "Transcription",
    "WhisperASR",
    "get_shared_asr",
    "model_readiness",
    "process_stats",
    "start_loading",
]
