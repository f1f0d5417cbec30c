"""VoiceSession timelines: real webrtcvad on real speech, scripted ASR/LLM/TTS for exact timing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streaming.errors import NotStarted, UnsupportedSampleRate
from streaming.events import (
    ErrorEvent,
    FinalTranscript,
    Interrupted,
    LLMToken,
    PartialTranscript,
    SpeechStarted,
    SpeechStopped,
    TTSAudio,
    TTSComplete,
    TTSPhraseDone,
    TurnFinished,
    TurnMetrics,
)
from streaming.session import SessionState
from streaming.states import IllegalTransition
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS
from tests.support.session_driver import CHUNK, feed, make_session, utterance
from tests.support.speech import load_clip, silence


async def test_two_utterances_give_two_turns_in_order() -> None:
    llm = ScriptedLLM([["Hi", " there."], ["Sure", " thing."]])
    session, events = make_session(llm=llm)
    session.start(16000)
    await feed(session, np.concatenate([utterance(), utterance("ps_cards_005")]))
    second = await events.wait_for(lambda e: isinstance(e, TurnFinished) and e.user_text == "second thing")
    finals = events.of(FinalTranscript)
    assert [f.text for f in finals] == ["hello there", "second thing"]
    first_id = finals[0].turn_id
    kinds = [type(e) for e in events.for_turn(first_id)]
    assert kinds[:4] == [SpeechStarted, SpeechStopped, FinalTranscript, LLMToken]
    assert kinds[-3:] == [TTSComplete, TurnMetrics, TurnFinished]
    tokens = [e for e in events.for_turn(first_id) if isinstance(e, LLMToken)]
    assert [t.text for t in tokens] == ["Hi", " there.", ""] and tokens[-1].done
    assert [e.seq for e in events.for_turn(first_id) if isinstance(e, TTSAudio)] == [0]
    assert second.status == "completed" and second.assistant_text == "Sure thing."
    # memory gating: the completed first exchange is in the second request
    assert [m.content for m in llm.requests[1]][-3:] == ["hello there", "Hi there.", "second thing"]
    metrics = events.of(TurnMetrics)[0].values
    # audio is fed faster than real time here, so only the server-side instants are ordered strictly
    assert metrics["t0"] < metrics["t2"] <= metrics["t3"] <= metrics["t4"]
    assert metrics["speech_end"] < metrics["t2"]
    assert metrics["final_source"] == "speculative"
    await session.aclose()


async def test_speculative_final_is_decoded_once_per_utterance() -> None:
    asr = ScriptedASR(["one"], final_delay=0.3)
    session, events = make_session(asr=asr)
    session.start(16000)
    await feed(session, utterance())
    await events.wait_for(lambda e: isinstance(e, TurnFinished))
    assert asr.final_calls == 1
    assert events.of(TurnMetrics)[0].values["final_source"] == "speculative"
    await session.aclose()


async def test_without_speculation_the_final_is_decoded_after_the_timeout() -> None:
    asr = ScriptedASR(["one"])
    session, events = make_session(asr=asr, speculative_final=False)
    session.start(16000)
    await feed(session, utterance())
    await events.wait_for(lambda e: isinstance(e, TurnFinished))
    assert asr.final_calls == 1
    assert events.of(TurnMetrics)[0].values["final_source"] == "decoded"
    await session.aclose()


async def test_partials_arrive_while_speaking_then_the_final_replaces_them() -> None:
    session, events = make_session(partial_interval_ms=300)
    session.start(16000)
    await feed(session, utterance(), pace=0.05)
    final = await events.wait_for(lambda e: isinstance(e, FinalTranscript))
    partials = [e for e in events.for_turn(final.turn_id) if isinstance(e, PartialTranscript)]
    assert len(partials) >= 2
    assert events.events.index(partials[-1]) < events.events.index(final)
    await events.wait_for(lambda e: isinstance(e, TurnMetrics))
    assert events.of(TurnMetrics)[0].values["partials"] == len(partials)
    await session.aclose()


async def test_barge_in_interrupts_the_reply_and_records_what_was_heard() -> None:
    llm = ScriptedLLM([["This reply is long.", " It has a second sentence.", " And a third one."], ["Ok."]])
    tts = ScriptedTTS(seconds_per_char=0.1)  # about two seconds of audio per phrase
    session, events = make_session(llm=llm, tts=tts, barge_in=True)
    session.start(16000)
    await feed(session, utterance())
    first_audio = await events.wait_for(lambda e: isinstance(e, TTSAudio))
    await feed(session, utterance("ps_cards_005"))
    interrupted = await events.wait_for(lambda e: isinstance(e, Interrupted))
    assert interrupted.turn_id == first_audio.turn_id and interrupted.reason == "barge_in"
    finished = await events.wait_for(
        lambda e: isinstance(e, TurnFinished) and e.turn_id == first_audio.turn_id
    )
    assert finished.status == "interrupted"
    assert len(finished.assistant_text) < len(
        "This reply is long. It has a second sentence. And a third one."
    )
    heard = session.heard_text(first_audio.turn_id, seq=0, played_s=first_audio.duration_s / 2)
    assert heard == "This reply"
    await events.wait_for(lambda e: isinstance(e, TurnFinished) and e.user_text == "second thing")
    # Remembered as far as it was heard: the question, and the words played before the interruption.
    remembered = [(m.role, m.content) for m in llm.requests[1]]
    assert ("user", "hello there") in remembered
    said = [content for role, content in remembered if role == "assistant"]
    full = "This reply is long. It has a second sentence. And a third one."
    assert all(full.startswith(content) and content != full for content in said)
    await session.aclose()


async def test_a_click_during_the_reply_does_not_interrupt_it() -> None:
    llm = ScriptedLLM([["This reply is long.", " It has a second sentence."]])
    tts = ScriptedTTS(seconds_per_char=0.05)
    session, events = make_session(llm=llm, tts=tts, barge_in=True, vad_start_ms=60, min_speech_ms=300)
    session.start(16000)
    await feed(session, utterance())
    first_audio = await events.wait_for(lambda e: isinstance(e, TTSAudio))
    click = load_clip("lj_LJ001-0013")[1600:3200]
    await feed(session, np.concatenate([silence(0.2), click, silence(1.0)]), pace=0.02)
    dropped = await events.wait_for(lambda e: isinstance(e, SpeechStopped) and e.reason == "too_short")
    assert dropped.turn_id != first_audio.turn_id
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished))
    assert finished.status == "completed" and not events.of(Interrupted)
    await session.aclose()


async def test_a_reply_to_the_first_part_of_a_monologue_does_not_talk_over_the_rest() -> None:
    monologue = np.concatenate([load_clip(n) for n in ("lj_LJ001-0001", "lj_LJ001-0003")])
    asr = ScriptedASR([f"part {n}" for n in range(1, 10)])
    llm = ScriptedLLM([["A reply."]] * 9)
    # Fed at about 10x real time: more than the default audio burst allows.
    session, events = make_session(
        asr=asr, llm=llm, barge_in=True, max_utterance_s=4, speculative_final=False, audio_burst_s=60
    )
    session.start(16000)
    await feed(session, np.concatenate([silence(0.3), monologue, silence(1.0)]), pace=0.01)
    last = await events.wait_for(lambda e: isinstance(e, TurnFinished) and e.status == "completed")
    earlier = [e for e in events.of(TurnFinished) if e is not last]
    assert earlier and all(e.status == "interrupted" for e in earlier)
    assert all(i.reason == "barge_in" for i in events.of(Interrupted))
    await session.aclose()


async def test_cancel_mid_utterance_drops_it() -> None:
    asr = ScriptedASR(["never"])
    session, events = make_session(asr=asr)
    session.start(16000)
    clip = load_clip("lj_LJ001-0001")
    await feed(session, np.concatenate([silence(0.3), clip[: len(clip) // 3]]))
    started = await events.wait_for(lambda e: isinstance(e, SpeechStarted))
    await session.cancel()
    stopped = await events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert stopped.turn_id == started.turn_id and stopped.reason == "cancelled"
    await feed(session, silence(1.0))
    await asyncio.sleep(0.3)
    assert not events.of(FinalTranscript)
    await session.aclose()
    assert not events.of(FinalTranscript)


async def test_an_utterance_sent_before_a_cancel_gets_no_reply_though_the_server_was_behind() -> None:
    llm = ScriptedLLM([["An answer nobody wants now."]])
    session, events = make_session(llm=llm, asr=ScriptedASR(["hello there"]))
    session.start(16000)
    audio = utterance(trailing=1.0)
    for start in range(0, len(audio), CHUNK):  # a burst after a network stall, not processed yet
        session.push_audio(audio[start : start + CHUNK].tobytes())
    await session.cancel()  # sent after the utterance and its silence
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished))
    # It keeps its transcript, like a turn already transcribing when the cancel came, but no reply.
    assert [f.text for f in events.of(FinalTranscript)] == ["hello there"]
    assert finished.status == "cancelled" and not llm.requests
    await session.aclose()


async def test_cancel_mid_reply_closes_the_llm_stream() -> None:
    llm = ScriptedLLM([["One", " two", " three", " four", " five."]], delay=0.3)
    session, events = make_session(llm=llm)
    session.start(16000)
    await feed(session, utterance())
    token = await events.wait_for(lambda e: isinstance(e, LLMToken))
    await session.cancel()
    interrupted = await events.wait_for(lambda e: isinstance(e, Interrupted))
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished))
    assert interrupted.turn_id == token.turn_id and interrupted.reason == "cancel"
    assert finished.status == "cancelled"
    assert llm.closed == 1
    assert len(events.of(LLMToken)) < 5
    assert session.memory.turns == 0
    await session.aclose()


async def test_llm_stall_ends_the_reply_with_a_recoverable_timeout() -> None:
    llm = ScriptedLLM([["Hello", " and"], ["Fine."]], stall_after=1)
    session, events = make_session(llm=llm, llm_token_timeout_s=0.5)
    await session.submit_text("are you there")
    error = await events.wait_for(lambda e: isinstance(e, ErrorEvent))
    assert (error.code, error.recoverable) == ("LLM_TIMEOUT", True)
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished))
    assert finished.status == "failed"
    assert session.memory.turns == 0
    llm.stall_after = None
    await session.submit_text("and now")
    done = await events.wait_for(lambda e: isinstance(e, TurnFinished) and e.user_text == "and now")
    assert done.status == "completed" and session.memory.turns == 1
    await session.aclose()


async def test_overall_llm_timeout() -> None:
    llm = ScriptedLLM([["word"] * 50], delay=0.1)
    session, events = make_session(llm=llm, llm_timeout_s=1)
    await session.submit_text("talk a lot")
    error = await events.wait_for(lambda e: isinstance(e, ErrorEvent))
    assert error.code == "LLM_TIMEOUT"
    await events.wait_for(lambda e: isinstance(e, TurnFinished))
    await session.aclose()


async def test_failed_phrase_is_reported_and_the_rest_still_plays_in_order() -> None:
    llm = ScriptedLLM([["First sentence.", " Second broken one.", " Third sentence."]])
    session, events = make_session(llm=llm, tts=ScriptedTTS(seconds_per_char=0.001, fail_on="broken"))
    await session.submit_text("go")
    await events.wait_for(lambda e: isinstance(e, TurnFinished))
    assert [e.code for e in events.of(ErrorEvent)] == ["TTS_FAILED"]
    chunks = events.of(TTSAudio)
    assert [(c.seq, c.text) for c in chunks] == [(0, "First sentence."), (1, "Third sentence.")]
    assert [e.seq for e in events.of(TTSPhraseDone)] == [0, 1]
    await session.aclose()


async def test_stop_finalizes_at_once_and_start_again_works() -> None:
    session, events = make_session(vad_silence_ms=3000)
    session.start(16000)
    await feed(session, np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await events.wait_for(lambda e: isinstance(e, SpeechStarted))
    session.stop()
    stopped = await events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert stopped.reason == "stop"
    await events.wait_for(lambda e: isinstance(e, FinalTranscript))
    with pytest.raises(NotStarted):
        session.push_audio(b"\0\0")
    session.start(48000)
    await feed(session, np.zeros(4800, dtype=np.int16))
    await session.aclose()


async def test_close_mid_utterance_still_produces_the_transcript() -> None:
    session, events = make_session()
    session.start(16000)
    await feed(session, np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await events.wait_for(lambda e: isinstance(e, SpeechStarted))
    await session.aclose("client_closed")
    final = events.of(FinalTranscript)
    assert [f.text for f in final] == ["hello there"]
    finished = events.of(TurnFinished)
    assert [(f.turn_id, f.status) for f in finished] == [(final[0].turn_id, "cancelled")]


async def test_audio_before_start_and_unsupported_rate_are_refused() -> None:
    session, _ = make_session()
    with pytest.raises(NotStarted):
        session.push_audio(b"\0" * 320)
    with pytest.raises(UnsupportedSampleRate):
        session.start(11025)
    await session.aclose()


async def test_the_session_moves_only_through_its_transition_table() -> None:
    session, _ = make_session()
    assert session.state is SessionState.IDLE
    session.start(16000)
    session.start(48000)  # a restart
    assert session.state is SessionState.LISTENING
    session.stop()
    assert session.state is SessionState.IDLE
    await session.aclose()
    assert session.state is SessionState.CLOSED
    with pytest.raises(IllegalTransition, match="illegal session transition CLOSED -> LISTENING"):
        session.start(16000)
    with pytest.raises(NotStarted):
        session.push_audio(b"\0\0")
    await session.aclose()  # closing twice is a no-op
    assert session.state is SessionState.CLOSED
