"""The turn stage on its own: finals in order, the pending bound, empty and failed transcripts.

The turns are built as the input stage builds them; a scripted ASR (and speculative decodes
that finish when a test says) makes each timeline exact.
"""

from __future__ import annotations

import asyncio

import pytest

from streaming.asr import Transcription
from streaming.config import StreamConfig
from streaming.errors import ASRFailed
from streaming.events import ErrorEvent, FinalTranscript, Info
from streaming.metrics import TurnClock
from streaming.turns import Answer, PendingTurn, TurnStage
from tests.support.fakes import ScriptedASR
from tests.support.session_driver import Collector
from tests.support.speech import load_clip

OWNER = "turns-test"


class Harness:
    """A TurnStage with its two queues; ``start()`` runs it."""

    def __init__(self, asr: ScriptedASR, **config) -> None:
        self.asr = asr
        self.events = Collector()
        self.pending: asyncio.Queue[PendingTurn | None] = asyncio.Queue()
        self.answers: asyncio.Queue[Answer | None] = asyncio.Queue()
        self.stage = TurnStage(
            StreamConfig().replace(**config),
            asr,
            owner=OWNER,
            emit=self.events,
            pending=self.pending,
            answers=self.answers,
        )
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.stage.run())

    async def close(self) -> None:
        self.pending.put_nowait(None)
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)

    def answered(self) -> list[Answer]:
        answers = []
        while not self.answers.empty():
            answers.append(self.answers.get_nowait())
        return answers


def voice_turn(turn_id: str, *, seconds: float = 1.0, speculative: asyncio.Task | None = None) -> PendingTurn:
    """A turn as the input stage hands it on: real speech audio, its length on the clock."""
    audio = load_clip("ps_goforward")[: round(seconds * 16000)]
    clock = TurnClock(turn_id)
    clock.mark("speech_end")
    clock.audio_s = len(audio) / 16000
    if speculative is not None:
        clock.final_source = "speculative"
    return PendingTurn(turn_id, clock, "voice", audio=audio, speculative=speculative)


async def decoded(text: str, after: float) -> Transcription:
    """A speculative decode that finishes ``after`` seconds from now."""
    await asyncio.sleep(after)
    return Transcription(text, 1.0, after)


async def test_a_voice_turn_is_decoded_and_answered() -> None:
    harness = Harness(ScriptedASR(["go forward ten meters"], final_delay=0.05))
    harness.start()
    turn = voice_turn("a", seconds=2.0)
    await harness.stage.put_utterance(turn)
    final = await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final == FinalTranscript("a", "go forward ten meters", 2.0, "voice")
    assert harness.events.events == [final]
    assert turn.clock.asr_compute_s == 0.05 and turn.clock.t2 >= turn.clock.speech_end
    assert turn.clock.final_source == "decoded" and harness.asr.final_calls == 1
    await harness.close()
    assert harness.answered() == [Answer("a", "go forward ten meters", turn.clock, 0)]


async def test_finals_come_in_order_even_when_a_later_turns_decode_finishes_first() -> None:
    harness = Harness(ScriptedASR([]))
    slow = asyncio.create_task(decoded("first", after=0.3))
    fast = asyncio.create_task(decoded("second", after=0.0))
    harness.start()
    await harness.stage.put_utterance(voice_turn("a", speculative=slow))
    await harness.stage.put_utterance(voice_turn("b", speculative=fast))
    typed_id = harness.stage.put_text("  third  ")
    await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript) and e.turn_id == typed_id)
    assert fast.done() and harness.events.events[0].turn_id == "a"
    finals = harness.events.of(FinalTranscript)
    assert [(f.turn_id, f.text, f.source) for f in finals] == [
        ("a", "first", "voice"),
        ("b", "second", "voice"),
        (typed_id, "third", "text"),
    ]
    assert [a.turn_id for a in harness.answered()] == ["a", "b", typed_id]
    await harness.close()


async def test_the_speculative_final_is_reused_not_decoded_again() -> None:
    asr = ScriptedASR(["decoded again"])
    harness = Harness(asr)
    turn = voice_turn("a", speculative=asyncio.create_task(decoded("from the pause", after=0.05)))
    harness.start()
    await harness.stage.put_utterance(turn)
    final = await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final.text == "from the pause" and asr.final_calls == 0
    assert turn.clock.final_source == "speculative" and turn.clock.asr_compute_s == 0.05
    await harness.close()


async def test_a_cancelled_speculative_final_is_decoded_after_all() -> None:
    asr = ScriptedASR(["decoded after all"])
    harness = Harness(asr)
    speculative = asyncio.create_task(decoded("never", after=10))
    turn = voice_turn("a", speculative=speculative)
    harness.start()
    await harness.stage.put_utterance(turn)
    await asyncio.sleep(0.05)
    speculative.cancel()
    final = await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final.text == "decoded after all" and asr.final_calls == 1
    assert turn.clock.final_source == "decoded"
    await harness.close()


async def test_a_known_final_needs_no_asr() -> None:
    asr = ScriptedASR([])
    harness = Harness(asr)
    turn = voice_turn("a")
    turn.text, turn.clock.final_source = "from the last partial", "partial"
    harness.start()
    await harness.stage.put_utterance(turn)
    final = await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final.text == "from the last partial" and asr.final_calls == 0
    assert turn.clock.asr_compute_s is None
    await harness.close()


async def test_the_pending_bound_makes_put_utterance_wait_for_a_final() -> None:
    asr = ScriptedASR(["one", "two", "three"], final_delay=0.2)
    harness = Harness(asr, max_pending_utterances=2)
    await asyncio.wait_for(harness.stage.put_utterance(voice_turn("a")), 0.5)
    await asyncio.wait_for(harness.stage.put_utterance(voice_turn("b")), 0.5)
    third = asyncio.create_task(harness.stage.put_utterance(voice_turn("c")))
    await asyncio.sleep(0.1)
    assert not third.done() and harness.pending.qsize() == 2
    # A typed message holds no slot: it is queued at once.
    typed_id = harness.stage.put_text("typed")
    assert harness.pending.qsize() == 3
    harness.start()
    # The slot frees when turn a's final is decoded (0.2 s), not before.
    await asyncio.wait_for(third, 1.0)
    assert [f.turn_id for f in harness.events.of(FinalTranscript)] == ["a"]
    await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript) and e.turn_id == "c")
    assert [f.turn_id for f in harness.events.of(FinalTranscript)] == ["a", "b", typed_id, "c"]
    assert asr.most_in_flight[OWNER] == 1
    await harness.close()


async def test_an_empty_transcript_gives_an_info_and_no_answer() -> None:
    harness = Harness(ScriptedASR(["", "after it"]), max_pending_utterances=1)
    harness.start()
    await harness.stage.put_utterance(voice_turn("a"))
    # The empty turn's slot is released: the next utterance is taken.
    await asyncio.wait_for(harness.stage.put_utterance(voice_turn("b")), 1.0)
    await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert harness.events.events == [
        Info("No speech recognised.", "a"),
        FinalTranscript("b", "after it", 1.0, "voice"),
    ]
    await harness.close()
    assert [a.turn_id for a in harness.answered()] == ["b"]


@pytest.mark.parametrize(
    "finals",
    [
        pytest.param([""], id="empty"),  # cut off mid-word, Whisper may return nothing for it
        pytest.param([], id="failed"),  # no scripted final left: ASRFailed, as a timeout at shutdown
    ],
)
async def test_an_empty_or_failed_final_keeps_the_words_the_last_partial_showed(finals: list[str]) -> None:
    """The utterance ends as the words the user was shown, not as nothing or an error."""
    harness = Harness(ScriptedASR(finals))
    harness.start()
    turn = voice_turn("a")
    turn.partial_text = "Go forward"
    await harness.stage.put_utterance(turn)
    final = await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final == FinalTranscript("a", "Go forward", 1.0, "voice")
    assert turn.clock.final_source == "partial"
    assert not [e for e in harness.events.events if isinstance(e, ErrorEvent)]
    await harness.close()
    assert [(a.turn_id, a.user_text) for a in harness.answered()] == [("a", "Go forward")]


async def test_an_empty_typed_message_gives_the_same_info() -> None:
    harness = Harness(ScriptedASR([]))
    harness.start()
    turn_id = harness.stage.put_text("   ")
    info = await harness.events.wait_for(lambda e: isinstance(e, Info))
    assert info == Info("No speech recognised.", turn_id)
    await harness.close()
    assert harness.answered() == []


async def test_an_asr_error_is_reported_with_its_code_and_the_next_turn_goes_on() -> None:
    asr = ScriptedASR([])  # no scripted final left: the call fails with ASRFailed
    harness = Harness(asr, max_pending_utterances=1)
    harness.start()
    await harness.stage.put_utterance(voice_turn("a"))
    error = await harness.events.wait_for(lambda e: isinstance(e, ErrorEvent))
    assert (error.code, error.turn_id, error.recoverable) == ("ASR_FAILED", "a", True)
    assert (error.message, error.detail) == (ASRFailed.public_message, "no scripted final left")
    asr.finals.append("recovered")
    await asyncio.wait_for(harness.stage.put_utterance(voice_turn("b")), 1.0)
    final = await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    assert final.turn_id == "b" and final.text == "recovered"
    await harness.close()


async def test_an_unexpected_failure_is_reported_as_transcription_failed() -> None:
    async def broken() -> Transcription:
        raise RuntimeError("decoder bug")

    harness = Harness(ScriptedASR(["fine"]), max_pending_utterances=1)
    harness.start()
    await harness.stage.put_utterance(voice_turn("a", speculative=asyncio.create_task(broken())))
    error = await harness.events.wait_for(lambda e: isinstance(e, ErrorEvent))
    assert error == ErrorEvent("ASR_FAILED", "Transcription failed.", True, "a")
    await asyncio.wait_for(harness.stage.put_utterance(voice_turn("b")), 1.0)
    await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript))
    await harness.close()


async def test_turns_queued_before_a_cancel_are_transcribed_but_not_current() -> None:
    harness = Harness(ScriptedASR(["before", "backlog", "after"]))
    await harness.stage.put_utterance(voice_turn("a"))
    harness.stage.drop_replies()
    # Ended in audio sent before the cancel, which the input stage had not reached yet.
    await harness.stage.put_utterance(voice_turn("b"))
    harness.stage.input_reached_cancel()
    await harness.stage.put_utterance(voice_turn("c"))
    harness.start()
    await harness.events.wait_for(lambda e: isinstance(e, FinalTranscript) and e.turn_id == "c")
    await harness.close()
    before, backlog, after = harness.answered()
    assert [a.user_text for a in (before, backlog, after)] == ["before", "backlog", "after"]
    assert [harness.stage.is_current(a) for a in (before, backlog, after)] == [False, False, True]


@pytest.mark.parametrize("source", ["voice", "text"])
async def test_none_ends_the_stage(source) -> None:
    harness = Harness(ScriptedASR(["x"]))
    harness.start()
    if source == "voice":
        await harness.stage.put_utterance(voice_turn("a"))
    else:
        harness.stage.put_text("x")
    await harness.close()
    (final,) = harness.events.of(FinalTranscript)
    assert harness.task.done() and final.audio_duration_s == (1.0 if source == "voice" else 0.0)
