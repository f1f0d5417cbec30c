"""Speculative replies: the LLM starts at the pause, its tokens held until the turn is committed.

Session timelines run the real webrtcvad on real speech with scripted engines, a slow LLM
standing for a local model; the reply stage is also driven on its own for the cases
a recording cannot script (a final that differs, a conversation that moved on).
"""

from __future__ import annotations

import asyncio

import numpy as np

from streaming.audio import SAMPLE_RATE
from streaming.config import StreamConfig
from streaming.events import (
    ErrorEvent,
    FinalTranscript,
    Interrupted,
    LLMToken,
    TTSAudio,
    TurnFinished,
    TurnMetrics,
)
from streaming.memory import ConversationMemory
from streaming.metrics import TurnClock
from streaming.reply import ReplyHandle, ReplyStage
from streaming.turns import Answer
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS
from tests.support.session_driver import Collector, feed, make_session
from tests.support.speech import silence, speech_only

FIRST_TOKEN_S = 0.5
"""The scripted LLM's wait before each token: a slow local model reading its prompt."""
REAL_TIME = 0.1  # seconds per 100 ms chunk fed


def spoken(pause_s: float) -> np.ndarray:
    return np.concatenate([silence(0.3), speech_only(), silence(pause_s)])


async def test_the_reply_adopts_the_llm_stream_begun_at_the_pause() -> None:
    llm = ScriptedLLM([["Ten meters, done."]], delay=FIRST_TOKEN_S)
    session, events = make_session(asr=ScriptedASR(["Go forward ten meters."]), llm=llm, vad_silence_ms=700)
    session.start(SAMPLE_RATE)
    await feed(session, spoken(1.2), pace=REAL_TIME)
    metrics = (await events.wait_for(lambda e: isinstance(e, TurnMetrics))).values

    assert metrics["reply_speculative"] is True and len(llm.requests) == 1
    # A request made at the final would take FIRST_TOKEN_S; the one begun at the pause was ahead.
    assert metrics["llm_first_token_ms"] < FIRST_TOKEN_S * 1000
    assert [e.text for e in events.of(LLMToken)] == ["Ten meters, done.", ""]
    await session.aclose()


async def test_the_first_phrase_is_spoken_during_the_pause_and_used_once() -> None:
    tts = ScriptedTTS(delay=0.3)  # each phrase takes 300 ms to synthesize
    llm = ScriptedLLM([["Ten meters,", " done", " and", " dusted."]], delay=0.01)
    session, events = make_session(
        asr=ScriptedASR(["Go forward ten meters."]), llm=llm, tts=tts, vad_silence_ms=700
    )
    session.start(SAMPLE_RATE)
    await feed(session, spoken(1.2), pace=REAL_TIME)
    metrics = (await events.wait_for(lambda e: isinstance(e, TurnMetrics))).values

    assert metrics["reply_speculative"] is True
    # Synthesized during the pause: the first audio follows the first token at once, not 300 ms on.
    assert metrics["tts_first_audio_ms"] < 150
    assert tts.texts == ["Ten meters,", "done and dusted."]  # the first once, held from the pause
    assert [e.text for e in events.of(TTSAudio)] == ["Ten meters,", "done and dusted."]
    await session.aclose()


async def test_speech_after_the_pause_discards_the_speculation_unseen() -> None:
    llm = ScriptedLLM([["About the first half."], ["About all of it."]], delay=0.05)
    asr = ScriptedASR(["Go forward ten meters.", "Go forward ten meters. Go forward ten meters."])
    session, events = make_session(asr=asr, llm=llm, vad_silence_ms=700)
    session.start(SAMPLE_RATE)
    # A 400 ms pause: decoded and speculated on at ~250 ms, then the user goes on.
    await feed(session, np.concatenate([spoken(0.4), speech_only(), silence(1.2)]), pace=REAL_TIME)
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished))

    assert len(llm.requests) == 2  # one speculation at each pause: the first dropped
    assert llm.requests[0][-1].content == "Go forward ten meters."
    assert [f.text for f in events.of(FinalTranscript)] == [finished.user_text]
    assert finished.assistant_text == "About all of it."
    assert "About the first half." not in [e.text for e in events.of(LLMToken)]
    assert [e.text for e in events.of(TTSAudio)] == ["About all of it."]  # its held audio is dropped
    # Nothing of it is remembered: only the committed exchange.
    remembered = [m.content for m in session.memory.messages_for("next")]
    assert "About all of it." in remembered and "About the first half." not in remembered
    # The reply that was sent began at the last pause, on the whole text.
    assert (await events.wait_for(lambda e: isinstance(e, TurnMetrics))).values["reply_speculative"] is True
    await session.aclose()


def speculations_running() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "speculative-reply" and not t.done()]


async def test_a_cancelled_reply_ends_the_llm_stream_it_took_over_from_the_pause() -> None:
    llm = ScriptedLLM([["One", " two", " three", " four", " five."]], delay=0.4)
    tts = ScriptedTTS(seconds_per_char=0.001)
    session, events = make_session(
        asr=ScriptedASR(["Go forward ten meters."]), llm=llm, tts=tts, vad_silence_ms=700
    )
    session.start(SAMPLE_RATE)
    await feed(session, spoken(1.2), pace=REAL_TIME)
    await events.wait_for(lambda e: isinstance(e, LLMToken) and e.text)
    await session.cancel()
    assert (await events.wait_for(lambda e: isinstance(e, TurnFinished))).status == "cancelled"
    await session.aclose()
    # The stream begun at the pause ended with the reply that adopted it: no request goes on
    # reading tokens, and no phrase is synthesized after the session closed.
    assert not speculations_running() and llm.closed == 1
    await asyncio.sleep(1.0)
    assert tts.texts == []


def _stage(
    llm: ScriptedLLM, memory: ConversationMemory, events: Collector, tts: ScriptedTTS | None = None
) -> ReplyStage:
    return ReplyStage(
        StreamConfig(), llm, tts or ScriptedTTS(), memory=memory, emit=events, should_answer=lambda a: True
    )


async def _answer(stage: ReplyStage, events: Collector, turn_id: str, text: str) -> TurnFinished:
    answers: asyncio.Queue[Answer | None] = asyncio.Queue()
    run = asyncio.create_task(stage.run(answers))
    answers.put_nowait(Answer(turn_id, text, TurnClock(turn_id), 0))
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished) and e.turn_id == turn_id)
    answers.put_nowait(None)
    await run
    return finished


def memory() -> ConversationMemory:
    return ConversationMemory("system", max_turns=4, max_chars=4000)


async def test_a_first_phrase_completed_after_the_reply_took_over_is_synthesized_once() -> None:
    llm = ScriptedLLM([["Ten", " meters,", " done."]], delay=0.2)
    tts = ScriptedTTS(seconds_per_char=0.001)
    events = Collector()
    stage = _stage(llm, memory(), events, tts)
    await stage.speculate("turn-1", "go")  # the turn is committed before any phrase is complete
    finished = await _answer(stage, events, "turn-1", "go")
    await asyncio.sleep(0.3)
    assert finished.status == "completed"
    assert tts.texts == ["Ten meters,", "done."]


async def test_a_reply_stopped_before_its_generation_ran_still_ends_the_stream_it_adopted(
    monkeypatch,
) -> None:
    llm = ScriptedLLM([["One", " two", " three", " four."]], delay=0.3)
    start = ReplyHandle.start

    def start_then_cancel(handle: ReplyHandle, *args, **kwargs) -> None:
        start(handle, *args, **kwargs)
        handle._generation.cancel()  # a cancel handled before the generation's first step

    monkeypatch.setattr(ReplyHandle, "start", start_then_cancel)
    events = Collector()
    stage = _stage(llm, memory(), events, ScriptedTTS(seconds_per_char=0.001))
    await stage.speculate("turn-1", "hello")
    finished = await _answer(stage, events, "turn-1", "hello")
    assert finished.status == "cancelled"
    assert not speculations_running() and llm.closed == 1


async def test_a_cancel_while_a_stale_speculation_closes_still_ends_the_turn() -> None:
    class SlowToClose(ScriptedLLM):
        """Closing its stream takes a moment, as closing an HTTP response does."""

        async def stream(self, messages):
            try:
                async for token in super().stream(messages):
                    yield token
            finally:
                await asyncio.sleep(0.2)

    llm = SlowToClose([["Held reply."], ["Fresh reply."]], delay=1.0)
    events = Collector()
    stage = _stage(llm, memory(), events, ScriptedTTS(seconds_per_char=0.001))
    await stage.speculate("turn-1", "go forward")
    answers: asyncio.Queue[Answer | None] = asyncio.Queue()
    run = asyncio.create_task(stage.run(answers))
    answers.put_nowait(Answer("turn-1", "go forward ten meters", TurnClock("turn-1"), 0))  # differs
    await asyncio.sleep(0.05)  # the held stream is being closed
    await stage.interrupt("cancel")
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished))
    answers.put_nowait(None)
    await run
    assert finished.status == "cancelled" and events.of(Interrupted)
    assert not events.of(ErrorEvent) and len(llm.requests) == 1  # no reply started after the cancel


async def test_a_voice_changed_during_the_pause_speaks_the_whole_reply() -> None:
    old, new = ScriptedTTS(seconds_per_char=0.001), ScriptedTTS(seconds_per_char=0.001)
    llm = ScriptedLLM([["First phrase here.", " Second phrase here."]] * 2)
    events = Collector()
    stage = _stage(llm, memory(), events, old)
    await stage.speculate("turn-1", "hello")
    await asyncio.sleep(0.1)  # the first phrase is synthesized in the old voice during the pause
    stage.configure(StreamConfig(), llm=llm, tts=new)
    finished = await _answer(stage, events, "turn-1", "hello")
    assert finished.status == "completed"
    assert new.texts == ["First phrase here.", "Second phrase here."]


async def test_a_final_that_differs_gets_a_fresh_reply() -> None:
    llm = ScriptedLLM([["Held reply."], ["Fresh reply."]])
    events = Collector()
    stage = _stage(llm, ConversationMemory("system", max_turns=4, max_chars=4000), events)
    await stage.speculate("turn-1", "go forward")
    finished = await _answer(stage, events, "turn-1", "go forward ten meters")
    assert finished.assistant_text == "Fresh reply."
    assert [m.content for m in llm.requests[1]][-1] == "go forward ten meters"
    assert "Held reply." not in [e.text for e in events.of(LLMToken)]


async def test_a_conversation_that_moved_on_gets_a_fresh_reply() -> None:
    llm = ScriptedLLM([["Held reply."], ["Fresh reply."]])
    memory = ConversationMemory("system", max_turns=4, max_chars=4000)
    events = Collector()
    stage = _stage(llm, memory, events)
    await stage.speculate("turn-2", "and then?")
    memory.commit("typed meanwhile", "answered meanwhile")
    finished = await _answer(stage, events, "turn-2", "and then?")
    assert finished.assistant_text == "Fresh reply." and len(llm.requests) == 2


async def test_a_failed_speculation_fails_the_reply_like_the_llm_would() -> None:
    llm = ScriptedLLM([["Never", " finished."]], fail_after=1)
    events = Collector()
    stage = _stage(llm, ConversationMemory("system", max_turns=4, max_chars=4000), events)
    await stage.speculate("turn-1", "hello")
    finished = await _answer(stage, events, "turn-1", "hello")
    assert finished.status == "failed" and len(llm.requests) == 1
