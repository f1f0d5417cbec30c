"""Bounded input: a session takes audio within a real-time allowance and a memory bound, and no more
work than its pending-utterance slots allow; webrtcvad on real speech, scripted ASR/LLM/TTS."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from streaming.errors import AudioTooFast
from streaming.events import FinalTranscript, SpeechStarted, SpeechStopped
from streaming.inbox import AudioGap, SessionInbox
from streaming.session import VoiceSession
from tests.support.fakes import ScriptedASR
from tests.support.session_driver import CHUNK, feed, make_session, utterance
from tests.support.speech import load_clip, silence


def push_all(session: VoiceSession, samples: np.ndarray, chunk: int = CHUNK) -> list[AudioTooFast]:
    """Push ``samples`` at once without yielding to the session; return the refusals."""
    refused = []
    for start in range(0, len(samples), chunk):
        try:
            session.push_audio(samples[start : start + chunk].tobytes())
        except AudioTooFast as exc:
            refused.append(exc)
    return refused


async def test_audio_beyond_the_burst_is_refused_and_the_inbox_stays_bounded() -> None:
    session, events = make_session(audio_max_speed=3, audio_burst_s=15)
    session.start(16000)
    began = time.monotonic()
    refused = push_all(session, silence(120.0))
    # 15 s fit, plus the 3x refill while the loop ran; the rest is refused frame by frame.
    accepted_frames = 1200 - len(refused)
    assert 150 <= accepted_frames <= 151 + 30 * (time.monotonic() - began)
    assert session.audio_held_bytes <= 15 * 16000 * 2
    assert refused[0].code == "AUDIO_TOO_FAST" and refused[0].recoverable
    assert "faster than 3x real time" in refused[0].message and "dropped 0.10 s" in refused[-1].message
    await asyncio.sleep(0.2)
    assert session.audio_held_bytes == 0  # the input task took what was queued
    # Once the allowance has refilled, speech gets through and is answered as usual.
    await asyncio.sleep(1.5)
    await feed(session, utterance())
    final = await events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final.text == "hello there"
    await session.aclose()


async def test_audio_is_measured_in_samples_at_the_declared_rate() -> None:
    session, _ = make_session(audio_max_speed=3, audio_burst_s=15)
    session.start(48000)
    began = time.monotonic()
    # 12 s at 48 kHz is three times the bytes of 12 s at 16 kHz, and still within the burst.
    assert push_all(session, np.zeros(12 * 48000, dtype=np.int16), chunk=4800) == []
    refused = push_all(session, np.zeros(6 * 48000, dtype=np.int16), chunk=4800)
    accepted_frames = 60 - len(refused)  # the 3 s left, plus the refill while the loop ran
    assert 30 <= accepted_frames <= 31 + 30 * (time.monotonic() - began)
    assert "at 48000 Hz" in refused[0].message
    await session.aclose()


async def test_after_a_drop_the_inbox_marks_the_gap_and_realigns_to_whole_samples() -> None:
    inbox: SessionInbox[str] = SessionInbox(max_speed=1, burst_s=1)
    inbox.put_audio(bytes(32000))
    assert await inbox.get() == bytes(32000)
    with pytest.raises(AudioTooFast, match="faster than 1x"):
        inbox.put_audio(b"\1" * 3201)  # dropped: the next frame starts in the middle of a sample...
    await asyncio.sleep(0.1)
    inbox.put_audio(b"\2\3\4\5")
    # ...so after the gap its first byte goes too, and what follows is decoded from whole samples.
    assert [await inbox.get(), await inbox.get()] == [AudioGap(), b"\3\4\5"]
    assert inbox.held_bytes == 0


async def test_an_utterance_ends_where_audio_was_dropped_and_is_transcribed() -> None:
    session, events = make_session(audio_max_speed=1, audio_burst_s=2.5)
    session.start(16000)
    clip = load_clip("lj_LJ001-0001")
    await feed(session, np.concatenate([silence(0.3), clip[: 2 * 16000]]))
    started = await events.wait_for(lambda e: isinstance(e, SpeechStarted))
    assert push_all(session, clip[2 * 16000 :])  # 7.7 s at once: beyond the 0.2 s left, dropped
    await asyncio.sleep(0.5)  # the allowance refills at real time
    await feed(session, silence(0.3))
    stopped = await events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert (stopped.turn_id, stopped.reason) == (started.turn_id, "audio_dropped")
    final = await events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final.turn_id == started.turn_id and final.text == "hello there"
    await session.aclose()


async def test_a_session_behind_on_its_finals_takes_no_more_audio_than_its_bounds() -> None:
    asr = ScriptedASR([f"utterance {n}" for n in range(1, 20)], final_delay=1.0)
    session, events = make_session(
        asr=asr, max_pending_utterances=1, audio_max_speed=100, audio_burst_s=5, vad_silence_ms=300
    )
    session.start(16000)
    refused: list[AudioTooFast] = []
    held = 0
    for _ in range(6):
        for start in range(0, len(clip := utterance(trailing=0.6)), CHUNK):
            try:
                session.push_audio(clip[start : start + CHUNK].tobytes())
            except AudioTooFast as exc:
                refused.append(exc)
            held = max(held, session.audio_held_bytes)
            await asyncio.sleep(0.005)  # about 20x real time
    # The input task waited for the turn loop, its inbox filled, and audio was refused.
    assert refused and "server is behind" in refused[0].message
    assert held <= 5 * 16000 * 2
    # One utterance being finalized, one waiting for its slot: never more work queued in the engine.
    assert asr.most_in_flight[session.asr_owner] <= 2
    # Whatever was taken in is not lost: every ended utterance gets its final.
    await asyncio.sleep(0.5)
    await session.aclose()
    ended = [e for e in events.of(SpeechStopped) if e.reason not in ("too_short", "cancelled")]
    finals = events.of(FinalTranscript)
    assert len(ended) >= 2 and [f.turn_id for f in finals] == [e.turn_id for e in ended]
