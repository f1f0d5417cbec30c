"""The whole pipeline on real speech: real tiny.en, real webrtcvad, offline responder, real espeak-ng."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streaming.asr import get_shared_asr
from streaming.config import StreamConfig
from streaming.engines import shared_engines
from streaming.events import ErrorEvent, FinalTranscript, Info, TTSAudio, TurnFinished, TurnMetrics
from streaming.memory import ConversationMemory
from streaming.session import VoiceSession
from tests.support.session_driver import Collector, feed
from tests.support.speech import load_clip, manifest, normalize_text, silence, word_error_rate

CLIPS = [
    "lj_LJ001-0004",
    "librivox_sns01_0880",
    "ls_1272-128104-0000",
    "ps_goforward",
    "lj_LJ001-0015",
    "ls_1995-1837-0001",
    "librivox_sns01_0930",
    "ps_cards_005",
]


@pytest.fixture(scope="module")
def config() -> StreamConfig:
    # A generous ASR timeout: on a busy machine a slow final must not turn into a missing turn.
    return StreamConfig().replace(barge_in=False, asr_timeout_s=120)


async def test_each_utterance_gives_one_final_and_streamed_wer_matches_batch(config) -> None:
    engines = shared_engines(config)
    collector = Collector()
    memory = ConversationMemory(config.system_prompt, max_turns=4, max_chars=4000)
    session = VoiceSession(config, engines, collector, memory=memory)
    session.open()
    session.start(16000)
    stream = np.concatenate([np.concatenate([silence(0.5), load_clip(name), silence(1.2)]) for name in CLIPS])
    await feed(session, stream, pace=0.05)  # twice real time: finals do not pile up on a busy machine

    # every utterance ends as a finished turn, an error or "no speech recognised"
    def settled(_event) -> bool:
        return sum(len(collector.of(kind)) for kind in (TurnFinished, ErrorEvent, Info)) >= len(CLIPS)

    await collector.wait_for(settled, 240)
    await session.aclose()

    finals = collector.of(FinalTranscript)
    assert len(finals) == len(CLIPS), [f.text for f in finals]
    assert not collector.of(ErrorEvent)
    references = {info.filename: info.reference_text for info in manifest()}
    refs = [normalize_text(references[f"{name}.wav"]) for name in CLIPS]
    streamed = word_error_rate(refs, [normalize_text(f.text) for f in finals])

    asr = get_shared_asr(config)
    batch = [(await asr.transcribe_final(load_clip(name), owner="batch")).text for name in CLIPS]
    batch_wer = word_error_rate(refs, [normalize_text(text) for text in batch])
    print(f"streamed WER {streamed:.3f}, batch WER {batch_wer:.3f}")
    assert streamed <= batch_wer + 0.005

    for finished in collector.of(TurnFinished):
        assert finished.status == "completed" and finished.assistant_text
    audio = collector.of(TTSAudio)
    assert audio and all(chunk.audio[:4] == b"RIFF" and chunk.duration_s > 0.2 for chunk in audio)
    metrics = [m.values for m in collector.of(TurnMetrics)]
    assert all(m["asr_rtf"] is not None and m["t4"] is not None for m in metrics)


async def test_max_utterance_length_splits_a_monologue_without_losing_words() -> None:
    config = StreamConfig().replace(barge_in=False, max_utterance_s=4)
    engines = shared_engines(StreamConfig().replace(barge_in=False))
    collector = Collector()
    session = VoiceSession(
        config, engines, collector, memory=ConversationMemory("", max_turns=1, max_chars=1000)
    )
    session.open()
    session.start(16000)
    clip = load_clip("lj_LJ001-0001")  # 9.7 s read without a long pause
    await feed(session, np.concatenate([silence(0.3), clip, silence(1.2)]))
    await asyncio.sleep(0.5)
    await collector.wait_for(
        lambda e: isinstance(e, FinalTranscript) and len(collector.of(FinalTranscript)) >= 3, 60
    )
    await session.aclose()
    finals = collector.of(FinalTranscript)
    joined = normalize_text(" ".join(f.text for f in finals))
    reference = normalize_text(
        next(i.reference_text for i in manifest() if i.filename == "lj_LJ001-0001.wav")
    )
    assert len(finals) >= 3
    assert word_error_rate([reference], [joined]) < 0.25
