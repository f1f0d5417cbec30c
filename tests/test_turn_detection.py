"""Adaptive end of turn: the text cues, the Smart Turn model, and the listener's timelines with them.

The timelines run the real webrtcvad and the real Smart Turn model on real speech; a scripted
ASR says exactly which text the detector reads.  Speech is fed at once and the pause after
it in real time, as a microphone sends it, so each verdict races the silence as it would live.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streaming.audio import SAMPLE_RATE
from streaming.commands import CancelCommand, ConfigureCommand
from streaming.config import ConfigError, StreamConfig
from streaming.events import Interrupted, SpeechStopped, TTSAudio, TurnFinished
from streaming.turn_detection import TurnRule
from streaming.turn_detection.cues import TextCue, text_cue
from streaming.turn_detection.detector import AdaptiveTurnDetector, build_turn_detector
from streaming.turn_detection.smart_turn import SmartTurnModel, shared_smart_turn
from streaming.turns import PendingTurn
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS
from tests.support.listener_harness import CHUNK, Harness
from tests.support.session_driver import feed as session_feed
from tests.support.session_driver import make_session
from tests.support.speech import load_clip, silence, speech_only

ADAPTIVE = {
    "turn_detection": "adaptive",
    "vad_silence_ms": 700,
    "turn_min_silence_ms": 300,
    "turn_max_silence_ms": 1200,
}
REAL_TIME = CHUNK / SAMPLE_RATE


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("What time is it?", TextCue.QUESTION),
        ("Who is it for?", TextCue.QUESTION),
        ("Go forward ten meters.", TextCue.TERMINAL),
        ("Stop!", TextCue.TERMINAL),
        ("I went to the shop and", TextCue.CONTINUATION),
        ("I went to the shop and...", TextCue.CONTINUATION),
        ("And so my fellow Americans,", TextCue.CONTINUATION),
        ("It was built by the.", TextCue.CONTINUATION),
        ("Um.", TextCue.CONTINUATION),
        ("I think it is", TextCue.NONE),
        ("", TextCue.NONE),
    ],
)
def test_text_cues(text: str, cue: TextCue) -> None:
    assert text_cue(text) is cue


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurnModel:
    """The process's model, loaded before a test's timeline starts."""
    model = shared_smart_turn()
    asyncio.run(model.probability(np.zeros(SAMPLE_RATE, dtype=np.int16)))
    return model


def speech_then_pause(name: str = "ps_goforward", pause_s: float = 0.2) -> np.ndarray:
    return np.concatenate([silence(0.3), speech_only(name), silence(pause_s)])


async def test_the_model_hears_a_finished_command_apart_from_a_phrase_cut_short(smart_turn) -> None:
    finished = await smart_turn.probability(speech_then_pause("ps_goforward"))
    # "Mr. Quilter is the apostle of the middle classes and we are glad..." stopped after "Quilter is".
    clip = load_clip("ls_1272-128104-0000")
    cut_short = await smart_turn.probability(np.concatenate([clip[: int(1.4 * SAMPLE_RATE)], silence(0.2)]))
    assert 0.0 <= cut_short < 0.5 < finished <= 1.0


async def test_the_verdicts_and_the_pauses_they_ask_for(smart_turn) -> None:
    config = StreamConfig().replace(**ADAPTIVE)
    detector = AdaptiveTurnDetector(config, smart_turn)
    audio = speech_then_pause()

    complete = await detector.judge(audio, "Go forward ten meters.")
    assert (complete.rule, complete.silence_ms) == (TurnRule.COMPLETE, 300) and complete.score >= 0.95
    unfinished = await detector.judge(audio, "Go forward ten meters and")
    assert (unfinished.rule, unfinished.silence_ms, unfinished.score) == (TurnRule.UNFINISHED, 1200, None)
    nothing_heard = await detector.judge(audio, "")
    assert (nothing_heard.rule, nothing_heard.silence_ms) == (TurnRule.UNSURE, 700)
    strict = AdaptiveTurnDetector(config.replace(turn_complete_score=1.0), smart_turn)
    unsure = await strict.judge(audio, "Go forward ten meters.")
    assert (unsure.rule, unsure.silence_ms) == (TurnRule.UNSURE, 700) and unsure.score == complete.score

    text_only = AdaptiveTurnDetector(config, None)
    assert (await text_only.judge(audio, "Is it?")).rule is TurnRule.COMPLETE
    assert (await text_only.judge(audio, "no punctuation")).rule is TurnRule.UNSURE


async def test_a_failing_model_leaves_the_pause_to_the_fixed_rule() -> None:
    class Broken:
        name = "broken"

        async def probability(self, audio: np.ndarray) -> float:
            raise RuntimeError("onnxruntime fell over")

    detector = AdaptiveTurnDetector(StreamConfig().replace(**ADAPTIVE), Broken())
    verdict = await detector.judge(speech_then_pause(), "Go forward ten meters.")
    assert (verdict.rule, verdict.silence_ms, verdict.score) == (TurnRule.UNSURE, 700, None)


def test_the_silences_must_be_ordered_only_for_adaptive_detection() -> None:
    with pytest.raises(ConfigError, match="STREAM_TURN_MIN_SILENCE_MS"):
        StreamConfig().replace(**{**ADAPTIVE, "turn_min_silence_ms": 800})
    with pytest.raises(ConfigError, match="STREAM_TURN_MAX_SILENCE_MS"):
        StreamConfig.from_env({"STREAM_TURN_DETECTION": "adaptive", "STREAM_VAD_SILENCE_MS": "2000"})
    fixed = StreamConfig.from_env({"STREAM_VAD_SILENCE_MS": "2000"})
    assert fixed.vad_silence_ms == 2000 and build_turn_detector(fixed) is None


async def _timeline(harness: Harness, *parts: tuple[np.ndarray, bool]) -> None:
    """Feed each part at once, or in real time when its flag says so (a pause being judged)."""
    harness.start()
    for audio, live in parts:
        await harness.feed(audio, pace=REAL_TIME if live else 0.0)


def _adaptive(
    smart_turn: SmartTurnModel, finals: list[str], *, final_delay: float = 0.05, **config
) -> Harness:
    settings = {**ADAPTIVE, **config}
    detector = AdaptiveTurnDetector(StreamConfig().replace(**settings), smart_turn)
    asr = ScriptedASR(finals, final_delay=final_delay, partials="next_final")
    return Harness(asr, detector=detector, **settings)


async def test_a_finished_sentence_ends_after_the_short_pause(smart_turn) -> None:
    harness = _adaptive(smart_turn, ["Go forward ten meters."])
    await _timeline(harness, (speech_then_pause(pause_s=0), False), (silence(1.0), True))
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))

    (turn,) = harness.turns()
    assert stopped.reason == "end_of_turn"
    assert turn.clock.end_rule == "complete" and turn.clock.end_score >= 0.95
    assert 300 <= turn.clock.end_pause_ms < 700
    await harness.close()


async def test_the_speech_before_a_pause_is_decoded_before_the_pause_is_judged(smart_turn) -> None:
    """An idle ASR decodes the speech 100 ms into the pause; at 200 ms the pause is judged on
    that text, so a finished sentence ends after the shortest silence even when a final decode
    takes 800 ms. With no worker free the judgement waits for the final, as before."""
    early = _adaptive(smart_turn, ["Go forward ten meters."], final_delay=0.8)
    await _timeline(early, (speech_then_pause(pause_s=0), False), (silence(1.0), True))
    await early.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    (turn,) = early.turns()
    assert (turn.clock.end_rule, turn.text or (await turn.speculative).text) == (
        "complete",
        "Go forward ten meters.",
    )
    assert early.asr.final_calls == 0 and 300 <= turn.clock.end_pause_ms < 600

    busy = _adaptive(smart_turn, ["Go forward ten meters."], final_delay=0.8)
    busy.asr.partials = "skipped"
    await _timeline(busy, (speech_then_pause(pause_s=0), False), (silence(1.0), True))
    await busy.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    (turn,) = busy.turns()
    assert (
        busy.asr.final_calls == 1 and turn.clock.end_pause_ms >= 650
    )  # the judgement waited: 700 ms ended it


async def test_a_trailing_and_waits_for_the_longest_pause(smart_turn) -> None:
    harness = _adaptive(smart_turn, ["Go forward ten meters and"])
    await _timeline(harness, (speech_then_pause(pause_s=0), False), (silence(1.6), True))
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))

    (turn,) = harness.turns()
    assert stopped.reason == "silence"
    assert turn.clock.end_rule == "unfinished" and turn.clock.end_score is None
    assert turn.clock.end_pause_ms == 1200
    await harness.close()


async def test_an_unsure_pause_waits_the_configured_silence(smart_turn) -> None:
    harness = _adaptive(smart_turn, ["Go forward ten meters."], turn_complete_score=1.0)
    await _timeline(harness, (speech_then_pause(pause_s=0), False), (silence(1.0), True))
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))

    (turn,) = harness.turns()
    assert stopped.reason == "silence" and turn.clock.end_rule == "unsure"
    assert turn.clock.end_pause_ms == 700 and 0 < turn.clock.end_score < 1
    await harness.close()


async def test_the_fixed_rule_records_its_pause() -> None:
    harness = Harness(ScriptedASR(["Go forward ten meters."]), vad_silence_ms=700)
    await _timeline(harness, (speech_then_pause(pause_s=1.0), False))
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))

    (turn,) = harness.turns()
    assert stopped.reason == "silence"
    assert (turn.clock.end_rule, turn.clock.end_pause_ms, turn.clock.end_score) == ("fixed", 700, None)
    await harness.close()


async def test_speech_within_the_short_pause_keeps_one_turn(smart_turn) -> None:
    """Speech back before the verdict's pause ran out: the verdict is dropped with the pause."""
    finals = ["Go forward ten meters.", "Go forward. Go forward."]
    harness = _adaptive(smart_turn, finals, turn_min_silence_ms=500)
    await _timeline(
        harness,
        (speech_then_pause(pause_s=0), False),
        (silence(0.25), True),  # judged complete at ~300 ms: end at 500 ms, but speech is back at 250
        (speech_only(), False),
        (silence(1.0), True),
    )
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    await asyncio.sleep(0.2)

    (turn,) = harness.turns()
    assert turn.clock.end_rule == "complete" and harness.count(SpeechStopped) == 1
    assert harness.resuming_voice_calls == 0
    await harness.close()


async def test_speech_resuming_after_an_early_end_is_a_new_turn_that_says_so(smart_turn) -> None:
    harness = _adaptive(smart_turn, ["Go forward ten meters.", "And then turn left."])
    await _timeline(
        harness,
        (speech_then_pause(pause_s=0), False),
        (silence(0.6), True),
        (speech_only(), False),
        (silence(1.6), True),
    )
    await harness.events.wait_for(lambda e: len(harness.events.of(SpeechStopped)) == 2, timeout=15)

    first, second = harness.turns()
    assert first.clock.end_rule == "complete" and 300 <= first.clock.end_pause_ms < 600
    assert [e.reason for e in harness.events.of(SpeechStopped)][0] == "end_of_turn"
    # Every voice callback of the second utterance says it resumes the first.
    assert harness.resuming_voice_calls > 0
    assert isinstance(second, PendingTurn) and second.turn_id != first.turn_id
    await harness.close()


async def test_speech_after_a_cancel_resumes_nothing(smart_turn) -> None:
    """A cancel after an early end: what the user says next is a turn of its own, which does not
    stop whatever reply is then playing (with barge-in off)."""
    harness = _adaptive(smart_turn, ["Go forward ten meters.", "And then turn left."])
    await _timeline(harness, (speech_then_pause(pause_s=0), False), (silence(0.6), True))
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    harness.inbox.put(CancelCommand())
    await harness.feed(np.concatenate([speech_only(), silence(1.6)]), pace=REAL_TIME)
    await harness.events.wait_for(lambda e: len(harness.events.of(SpeechStopped)) == 2, timeout=15)

    assert harness.cancels_reached == 1 and len(harness.turns()) == 2
    assert harness.voice_calls > 0 and harness.resuming_voice_calls == 0
    await harness.close()


@pytest.mark.parametrize("detection_switched_off_meanwhile", [False, True])
async def test_the_reply_to_a_turn_ended_early_yields_to_its_continuation_even_without_barge_in(
    smart_turn, detection_switched_off_meanwhile
) -> None:
    """The user was not finished: the reply to the first half stops, and the whole is answered.

    Also when the client switched adaptive detection off while the first half was spoken: that
    utterance keeps the detection it began with, and so does its reply."""
    llm = ScriptedLLM([["This reply is long.", " It has a second sentence."], ["Now I see."]])
    # Two utterances of one clip: a partial could not tell which final it decodes.
    asr = ScriptedASR(["Go forward ten meters.", "And then turn left."], partials="skipped")
    detector = AdaptiveTurnDetector(StreamConfig().replace(**ADAPTIVE), smart_turn)
    session, events = make_session(
        asr=asr, llm=llm, tts=ScriptedTTS(seconds_per_char=0.1), detector=detector, barge_in=False, **ADAPTIVE
    )
    session.start(SAMPLE_RATE)
    await session_feed(session, speech_then_pause(pause_s=0))
    if detection_switched_off_meanwhile:
        session.configure(ConfigureCommand(turn_detection="fixed"))
    await session_feed(session, silence(0.6), pace=REAL_TIME)
    first_audio = await events.wait_for(lambda e: isinstance(e, TTSAudio))
    await session_feed(session, np.concatenate([speech_only(), silence(1.6)]), pace=REAL_TIME)

    interrupted = await events.wait_for(lambda e: isinstance(e, Interrupted))
    assert interrupted.turn_id == first_audio.turn_id and interrupted.reason == "barge_in"
    await events.wait_for(lambda e: isinstance(e, TurnFinished) and e.user_text == "And then turn left.")
    first = next(e for e in events.of(TurnFinished) if e.turn_id == first_audio.turn_id)
    assert first.status == "interrupted"
    # The second request carries the first question: the whole of what the user said is answered.
    assert ("user", "Go forward ten meters.") in [(m.role, m.content) for m in llm.requests[1]]
    await session.aclose()
