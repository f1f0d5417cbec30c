"""ReplyHandle and ReplyStage on scripted LLM/TTS timelines: outcomes, interruption, heard text, playout."""

from __future__ import annotations

import asyncio
import time

import pytest

from streaming.config import StreamConfig
from streaming.events import (
    ErrorEvent,
    Interrupted,
    LLMToken,
    TTSAudio,
    TTSComplete,
    TTSPhraseDone,
    TurnFinished,
    TurnMetrics,
)
from streaming.memory import ConversationMemory
from streaming.metrics import TurnClock
from streaming.reply import ReplyHandle, ReplyStage, ReplyState
from streaming.states import IllegalTransition, Transitions
from streaming.turns import Answer
from tests.support.fakes import ScriptedLLM, ScriptedTTS
from tests.support.session_driver import Collector

CONFIG = StreamConfig()
# With stall_after=2: one 19-character phrase, then the LLM stalls.
# At 0.1 s a character (ScriptedTTS) that phrase plays for 1.9 s.
STALLING = [["This reply is long.", " It has", " more."]]


def make_handle(*, track_playback: bool = False) -> ReplyHandle:
    return ReplyHandle("turn-1", "hello", TurnClock("turn-1"), track_playback=track_playback)


def start(handle: ReplyHandle, llm: ScriptedLLM, tts: ScriptedTTS, events: Collector) -> None:
    messages = ConversationMemory("system", max_turns=4, max_chars=4000).messages_for(handle.user_text)
    handle.start(messages, llm=llm, tts=tts, config=CONFIG, emit=events)


def reply_tasks() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "reply"]


async def test_a_reply_is_generated_in_order_and_completes() -> None:
    handle, events = make_handle(), Collector()
    start(handle, ScriptedLLM([["Hi", " there."]]), ScriptedTTS(seconds_per_char=0.001), events)
    await handle.wait_for_playout()
    assert handle.state is ReplyState.COMPLETED and handle.ended and not handle.interrupted
    assert [type(e) for e in events.events] == [
        LLMToken,
        LLMToken,
        LLMToken,
        TTSAudio,
        TTSPhraseDone,
        TTSComplete,
    ]
    assert handle.generated_text == handle.assistant_text == "Hi there."
    assert not reply_tasks()


async def test_interrupt_cancels_the_generation_awaits_it_and_returns_what_was_heard() -> None:
    llm = ScriptedLLM(STALLING, stall_after=2)
    handle, events = make_handle(), Collector()
    start(handle, llm, ScriptedTTS(seconds_per_char=0.1), events)
    await events.wait_for(lambda e: isinstance(e, TTSAudio))
    await asyncio.sleep(1.0)  # about half of the phrase's 1.9 s has played
    assert handle.audible()
    heard = await handle.interrupt("barge_in")
    assert heard == "This reply"
    assert handle.state is ReplyState.INTERRUPTED and handle.interrupted and not handle.audible()
    # The cancellation was awaited: the LLM stream is closed and the handle's task is gone.
    assert llm.closed == 1 and not reply_tasks()
    await asyncio.sleep(0.3)
    assert handle.heard_text() == handle.assistant_text == "This reply"  # fixed when interrupted
    await handle.wait_for_playout()
    assert handle.state is ReplyState.INTERRUPTED
    assert not events.of(TTSComplete)


async def test_a_cancel_before_any_audio_hears_nothing() -> None:
    llm = ScriptedLLM(STALLING, stall_after=1)
    handle, events = make_handle(), Collector()
    start(handle, llm, ScriptedTTS(), events)
    await events.wait_for(lambda e: isinstance(e, LLMToken))
    assert await handle.interrupt("cancel") == ""
    assert handle.state is ReplyState.CANCELLED and handle.interrupted and llm.closed == 1


async def test_an_ended_reply_cannot_be_interrupted_or_restarted() -> None:
    handle, events = make_handle(), Collector()
    llm, tts = ScriptedLLM([["Ok."]]), ScriptedTTS(seconds_per_char=0.001)
    start(handle, llm, tts, events)
    await handle.wait_for_playout()
    with pytest.raises(IllegalTransition, match="illegal reply transition COMPLETED -> INTERRUPTED"):
        await handle.interrupt("barge_in")
    with pytest.raises(RuntimeError, match="already started"):
        start(handle, llm, tts, events)
    assert handle.state is ReplyState.COMPLETED


def test_the_transition_table_names_both_states() -> None:
    table = Transitions("reply", {ReplyState.PLAYING: {ReplyState.COMPLETED}, ReplyState.COMPLETED: set()})
    assert table.check(ReplyState.PLAYING, ReplyState.COMPLETED) is ReplyState.COMPLETED
    with pytest.raises(IllegalTransition, match="PLAYING -> FAILED"):
        table.check(ReplyState.PLAYING, ReplyState.FAILED)
    assert table.is_final(ReplyState.COMPLETED) and not table.is_final(ReplyState.PLAYING)


async def test_with_playback_tracked_playout_lasts_until_the_audio_has_played() -> None:
    handle, events = make_handle(track_playback=True), Collector()
    start(handle, ScriptedLLM([["Hi", " there."]]), ScriptedTTS(seconds_per_char=0.05), events)
    await handle.wait_for_generation()
    assert handle.state is ReplyState.PLAYING and handle.audible()
    await handle.wait_for_playout()
    assert time.monotonic() >= handle.playback_end > 0
    assert handle.state is ReplyState.COMPLETED


async def test_without_playback_tracking_a_sent_reply_completes_at_once() -> None:
    handle, events = make_handle(), Collector()
    start(handle, ScriptedLLM([["Hi", " there."]]), ScriptedTTS(seconds_per_char=0.05), events)
    await handle.wait_for_playout()
    assert handle.state is ReplyState.COMPLETED and time.monotonic() < handle.playback_end


async def test_an_interrupt_during_playout_ends_the_wait() -> None:
    handle, events = make_handle(track_playback=True), Collector()
    start(handle, ScriptedLLM([["This reply is long."]]), ScriptedTTS(seconds_per_char=0.1), events)
    await handle.wait_for_generation()
    playout = asyncio.create_task(handle.wait_for_playout())
    await asyncio.sleep(0.1)
    began = time.monotonic()
    assert await handle.interrupt("cancel") == ""
    await playout
    assert time.monotonic() - began < 0.5 and handle.state is ReplyState.CANCELLED


async def test_an_llm_failure_fails_the_reply_and_keeps_what_was_sent() -> None:
    llm = ScriptedLLM([["First sentence.", " Then", " more"]], fail_after=2)
    handle, events = make_handle(), Collector()
    start(handle, llm, ScriptedTTS(seconds_per_char=0.001), events)
    await handle.wait_for_playout()
    assert handle.state is ReplyState.FAILED and not handle.interrupted
    assert [e.code for e in events.of(ErrorEvent)] == ["LLM_ERROR"]
    assert handle.assistant_text == "First sentence."


async def test_the_stage_reports_a_barge_in_then_finishes_the_turn_with_what_was_heard() -> None:
    memory = ConversationMemory("system", max_turns=4, max_chars=4000)
    events = Collector()
    stage = ReplyStage(
        CONFIG.replace(barge_in=True),
        ScriptedLLM(STALLING, stall_after=2),
        ScriptedTTS(seconds_per_char=0.1),
        memory=memory,
        emit=events,
        should_answer=lambda answer: True,
    )
    answers: asyncio.Queue[Answer | None] = asyncio.Queue()
    run = asyncio.create_task(stage.run(answers))
    answers.put_nowait(Answer("turn-1", "hello", TurnClock("turn-1"), 0))
    await events.wait_for(lambda e: isinstance(e, TTSAudio))
    await asyncio.sleep(1.0)
    await stage.interrupt("barge_in")
    finished = await events.wait_for(lambda e: isinstance(e, TurnFinished))
    kinds = [type(e) for e in events.events]
    after = kinds[kinds.index(TTSPhraseDone) + 1 :]
    # The client hears of the interruption before the turn's metrics and its end.
    assert after == [Interrupted, TurnMetrics, TurnFinished] and TTSComplete not in kinds
    assert (finished.status, finished.assistant_text) == ("interrupted", "This reply")
    assert memory.messages_for("next")[-2].content == "This reply"
    assert stage.current is None
    assert stage.heard_text("turn-1", seq=0, played_s=1.9) == "This reply is long."
    answers.put_nowait(None)
    await run


async def test_the_stage_finishes_an_answer_it_should_not_give_as_cancelled() -> None:
    events = Collector()
    llm = ScriptedLLM([["Never."]])
    stage = ReplyStage(
        CONFIG,
        llm,
        ScriptedTTS(),
        memory=ConversationMemory("system", max_turns=4, max_chars=4000),
        emit=events,
        should_answer=lambda answer: False,
    )
    answers: asyncio.Queue[Answer | None] = asyncio.Queue()
    answers.put_nowait(Answer("turn-1", "hello", TurnClock("turn-1"), 0))
    answers.put_nowait(None)
    await stage.run(answers)
    assert [(type(e), e.status) for e in events.events] == [(TurnFinished, "cancelled")]
    assert not llm.requests
