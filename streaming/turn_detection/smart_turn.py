"""Pipecat's Smart Turn v3 end-of-turn audio model, run with onnxruntime, one per process.

The model (BSD 2-Clause, Daily; a Whisper-tiny encoder with a classifier, int8) hears how
the utterance ends — its pitch, energy and timing — and gives the probability that the
speaker has finished.  Its file ships inside PyPI's ``pipecat-ai`` wheel, which the
Makefile installs without dependencies: nothing of Pipecat is imported, the file is
found through the distribution's metadata.

Input is the last 8 s of the utterance (zero-padded in front), normalized to zero mean
and unit variance, as 80 log-mel bins — the features Whisper uses, computed here with
faster-whisper's extractor.  A call takes ~45 ms on one core; calls run one at a time
on the model's own thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib.metadata
import logging
from pathlib import Path

import numpy as np

from streaming.audio import SAMPLE_RATE

logger = logging.getLogger(__name__)

DISTRIBUTION = "pipecat-ai"
EXACT_ON_EVERY_CPU = "QDQSelectorActionTransformer"
"""The graph optimization left out: it turns the model's quantize/dequantize pairs into integer
kernels, which on CPUs without VNNI (AVX2 only, e.g. this project's AMD EPYC CI) saturate and change
the scores (a phrase cut short after "Mister Quilter is" scored 0.89 "finished" instead of 0.10).
Without it the model computes in float the same on every CPU, at ~120 ms a call instead of ~70 ms."""
MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
WINDOW_S = 8


class SmartTurnMissing(RuntimeError):
    """The model file is not installed (``make setup`` installs it)."""


def model_path() -> Path:
    """Where the installed ``pipecat-ai`` wheel keeps the model file."""
    try:
        path = Path(importlib.metadata.distribution(DISTRIBUTION).locate_file(MODEL_FILE))
    except importlib.metadata.PackageNotFoundError:
        raise SmartTurnMissing(f"{DISTRIBUTION} is not installed; run make setup") from None
    if not path.is_file():
        raise SmartTurnMissing(f"{path} is missing; reinstall {DISTRIBUTION}")
    return path


class SmartTurnModel:
    """The loaded model; :meth:`probability` is safe to call from any session."""

    name = "smart-turn-v3.2"

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="smart-turn")
        self._loaded = self._executor.submit(self._load)

    def _load(self) -> None:
        import onnxruntime
        from faster_whisper.feature_extractor import FeatureExtractor

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # leaves the other core to Whisper
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self._session = onnxruntime.InferenceSession(
            str(model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=[EXACT_ON_EVERY_CPU],
        )
        self._features = FeatureExtractor(feature_size=80, chunk_length=WINDOW_S)
        logger.info("end-of-turn model loaded", extra={"model": self.name})

    async def probability(self, audio: np.ndarray) -> float:
        """The probability (0..1) that the speaker finished at the end of ``audio`` (int16, 16 kHz)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._predict, audio)

    def _predict(self, audio: np.ndarray) -> float:
        self._loaded.result()  # raises the load error, if any, to every caller
        window = SAMPLE_RATE * WINDOW_S
        samples = audio[-window:].astype(np.float32) / 32768.0
        samples = np.pad(samples, (window - len(samples), 0))
        samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        features = self._features(samples, padding=0)[np.newaxis].astype(np.float32)
        (scores,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(scores).reshape(-1)[0])


@functools.cache
def shared_smart_turn() -> SmartTurnModel:
    """The process's one model, loading in the background from the first call."""
    return SmartTurnModel()
