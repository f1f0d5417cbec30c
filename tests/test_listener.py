"""The input stage on its own: real webrtcvad on real speech, a scripted ASR for exact timelines.

Each test drives a :class:`~streaming.listener.Listener` through its inbox, the way the
session does, and checks the events it emits and the utterances it hands on, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import numpy as np
import pytest
import soxr

from streaming.asr import Transcription
from streaming.audio import SAMPLE_RATE
from streaming.commands import CancelCommand, StartCommand, StopCommand
from streaming.config import StreamConfig
from streaming.errors import ASRFailed, ModelLoadFailed
from streaming.events import ErrorEvent, PartialTranscript, SpeechStarted, SpeechStopped
from streaming.inbox import AudioGap
from streaming.turns import PendingTurn
from streaming.vad import UtteranceEnd, VadSegmenter
from tests.support.fakes import ScriptedASR
from tests.support.listener_harness import CHUNK, OWNER, Harness
from tests.support.speech import clip_info, load_clip, silence


def utterance(name: str = "ps_goforward", trailing: float = 1.0) -> np.ndarray:
    return np.concatenate([silence(0.3), load_clip(name), silence(trailing)])


def vad_utterances(config: StreamConfig, audio: np.ndarray) -> list[UtteranceEnd]:
    """What the VAD alone makes of ``audio``: the utterances the listener must hand on."""
    vad = VadSegmenter.from_config(config)
    return [e for e in vad.feed(audio) if isinstance(e, UtteranceEnd)]


async def test_speech_gives_started_partials_then_the_utterance_and_stopped() -> None:
    asr = ScriptedASR(["go forward"], partial_delay=0.01)
    harness = Harness(asr, partial_interval_ms=200)
    audio = utterance()
    harness.start()
    await harness.feed(audio, pace=0.05)  # twice real time: partials come every 200 ms of wall clock
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))

    kinds = harness.kinds()
    partials = harness.events.of(PartialTranscript)
    assert len(partials) >= 2
    assert kinds == [SpeechStarted] + [PartialTranscript] * len(partials) + [PendingTurn, SpeechStopped]
    turn = harness.turns()[0]
    assert stopped.reason == "silence"
    assert {e.turn_id for e in harness.events.events} == {turn.turn_id}
    # Each partial decodes the utterance so far: they see more and more audio.
    seen = [float(p.text.removeprefix("partial ").removesuffix("s")) for p in partials]
    assert seen == sorted(seen) and seen[0] < seen[-1]
    assert turn.clock.partials == len(partials) and turn.clock.t1 is not None

    # The utterance handed on is exactly the VAD's, a little longer than the spoken part of the clip.
    (expected,) = vad_utterances(harness.config, audio)
    assert turn.source == "voice" and np.array_equal(turn.audio, expected.audio)
    assert turn.clock.audio_s == len(expected.audio) / SAMPLE_RATE
    assert clip_info("ps_goforward").speech_end_s - 0.5 < turn.clock.audio_s < len(audio) / SAMPLE_RATE
    assert turn.clock.t0 < turn.clock.speech_end
    # Its final was started at the pause: the turn stage will only have to await it.
    assert turn.speculative is not None and turn.clock.final_source == "speculative"
    assert (await turn.speculative).text == "go forward" and asr.final_calls == 1
    assert harness.voice_calls > 0
    await harness.close()


async def test_speech_stopped_waits_until_the_turn_stage_took_the_utterance() -> None:
    harness = Harness(ScriptedASR(["one"]), hand_on_delay=0.3, speculative_final=False)
    harness.start()
    await harness.feed(utterance())
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert harness.kinds() == [SpeechStarted, PendingTurn, SpeechStopped]
    turn = harness.turns()[0]
    assert turn.speculative is None and turn.text is None and turn.clock.final_source == "decoded"
    assert harness.asr.final_calls == 0  # without speculation the turn stage decodes the final
    await harness.close()


async def test_two_utterances_are_handed_on_in_order() -> None:
    harness = Harness(ScriptedASR(["first", "second"]))
    audio = np.concatenate([utterance("ps_goforward"), utterance("ps_cards_005")])
    harness.start()
    await harness.feed(audio)
    await harness.events.wait_for(lambda e: harness.count(SpeechStopped) == 2)
    assert harness.kinds() == [SpeechStarted, PendingTurn, SpeechStopped] * 2
    expected = vad_utterances(harness.config, audio)
    turns = harness.turns()
    assert [len(t.audio) for t in turns] == [len(e.audio) for e in expected]
    assert [(await t.speculative).text for t in turns] == ["first", "second"]
    assert len({t.turn_id for t in turns}) == 2
    await harness.close()


async def test_stop_ends_the_utterance_at_once_and_later_audio_is_ignored() -> None:
    harness = Harness(ScriptedASR(["go forward"]), vad_silence_ms=3000)
    clip = load_clip("ps_goforward")
    harness.start()
    await harness.feed(np.concatenate([silence(0.3), clip]))
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStarted))
    harness.inbox.put(StopCommand())
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert stopped.reason == "stop"
    assert harness.kinds() == [SpeechStarted, PendingTurn, SpeechStopped]
    turn = harness.turns()[0]
    # Ended without waiting for the 3 s of silence: the audio stops where the clip did.
    assert 1.0 < turn.clock.audio_s <= 0.3 + len(clip) / SAMPLE_RATE
    # After stop there is no decoder: audio is dropped until the next start.
    await harness.feed(utterance("ps_cards_005"))
    await asyncio.sleep(0.2)
    assert harness.kinds() == [SpeechStarted, PendingTurn, SpeechStopped]
    await harness.close()


async def test_a_click_too_short_to_be_speech_is_discarded() -> None:
    asr = ScriptedASR(["never"], final_delay=1.0)
    harness = Harness(asr, vad_start_ms=60, min_speech_ms=300)
    click = load_clip("lj_LJ001-0013")[1600:3200]  # 0.1 s of speech
    harness.start()
    await harness.feed(np.concatenate([silence(0.5), click, silence(1.5)]))
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert harness.kinds() == [SpeechStarted, SpeechStopped]
    assert stopped.reason == "too_short" and stopped.turn_id == harness.events.of(SpeechStarted)[0].turn_id
    # Not speech: no barge-in, and the final decoded at its pause was cancelled, unfinished.
    assert harness.voice_calls == 0
    assert asr.in_flight[OWNER] == 0 and asr.finals == ["never"]
    await harness.close()


async def test_silence_and_noise_produce_no_turn() -> None:
    asr = ScriptedASR([])
    harness = Harness(asr)
    harness.start()
    await harness.feed(silence(3.0))
    await asyncio.sleep(0.2)
    await harness.close()
    assert harness.events.events == [] and asr.final_calls == 0 and asr.partial_calls == 0
    assert harness.voice_calls == 0


async def test_a_blip_too_short_to_be_speech_leaves_no_turn() -> None:
    harness = Harness(ScriptedASR(["never"]), min_speech_ms=800)
    clip = load_clip("lj_LJ001-0004")
    blip = clip[16000 : 16000 + 6400]  # 0.4 s of speech
    harness.start()
    await harness.feed(np.concatenate([silence(0.5), blip, silence(1.5)]))
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert stopped.reason == "too_short"
    assert stopped.turn_id == harness.events.of(SpeechStarted)[0].turn_id
    await asyncio.sleep(0.2)
    assert not harness.turns()  # nothing for the turn stage: no final transcript can follow
    assert harness.kinds() == [SpeechStarted, SpeechStopped]
    await harness.close()


async def test_cancel_drops_the_utterance_in_progress() -> None:
    asr = ScriptedASR(["never"])
    harness = Harness(asr)
    clip = load_clip("lj_LJ001-0001")
    harness.start()
    await harness.feed(np.concatenate([silence(0.3), clip[: len(clip) // 3]]))
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStarted))
    harness.inbox.put(CancelCommand())
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert stopped.reason == "cancelled"
    # The cancel ended the VAD's utterance too: what follows is never handed on as a turn.  (Cut
    # mid-word, webrtcvad's hangover may still start a blip, which is discarded as too short.)
    await harness.feed(silence(1.0))
    await asyncio.sleep(0.1)
    await harness.close()
    assert harness.kinds()[:2] == [SpeechStarted, SpeechStopped] and not harness.turns()
    assert [e.reason for e in harness.events.of(SpeechStopped)[1:]] in ([], ["too_short"])
    assert asr.final_calls == 0 or asr.finals == ["never"]


async def test_an_audio_gap_ends_the_utterance_where_audio_was_dropped() -> None:
    harness = Harness(ScriptedASR(["before the gap"]), vad_silence_ms=3000)
    harness.start()
    await harness.feed(np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStarted))
    harness.inbox.put(AudioGap())
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert stopped.reason == "audio_dropped"
    assert harness.kinds() == [SpeechStarted, PendingTurn, SpeechStopped]
    await harness.close()


@pytest.mark.parametrize(("command", "reason"), [(None, "disconnect"), (StartCommand(48000), "restart")])
async def test_disconnect_and_restart_finalize_the_utterance_in_progress(command, reason) -> None:
    harness = Harness(ScriptedASR(["go forward"]), vad_silence_ms=3000)
    harness.start()
    await harness.feed(np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStarted))
    harness.inbox.put(command)
    stopped = await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert stopped.reason == reason
    assert harness.kinds() == [SpeechStarted, PendingTurn, SpeechStopped]
    if command is None:
        await asyncio.wait_for(harness.task, 5)  # None ends the input task
    await harness.close()


async def test_audio_at_48_khz_is_resampled_before_the_vad() -> None:
    harness = Harness(ScriptedASR(["go forward"]))
    audio16 = utterance()
    # Through float32: soxr's int16 path dithers, and webrtcvad may call dithered silence speech.
    audio48 = np.round(soxr.resample(audio16.astype(np.float32), SAMPLE_RATE, 48000)).astype(np.int16)
    harness.start(48000)
    for start in range(0, len(audio48), 3 * CHUNK):
        harness.inbox.put_audio(audio48[start : start + 3 * CHUNK].tobytes())
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert harness.kinds() == [SpeechStarted, PendingTurn, SpeechStopped]
    (expected,) = vad_utterances(harness.config, audio16)
    assert abs(len(harness.turns()[0].audio) - len(expected.audio)) <= 0.05 * SAMPLE_RATE
    await harness.close()


async def test_audio_before_start_is_ignored() -> None:
    harness = Harness(ScriptedASR([]))
    harness.inbox.start_stream(SAMPLE_RATE)
    await harness.feed(utterance())
    await asyncio.sleep(0.1)
    await harness.close()
    assert harness.events.events == []


class FailingPartials(ScriptedASR):
    """Partials fail with ``error``; finals are scripted as usual."""

    def __init__(self, error: Exception) -> None:
        super().__init__(["final"], partial_delay=0.0)
        self.error = error

    async def transcribe_partial(
        self, audio: np.ndarray, *, owner: Hashable, language: str | None = None, spare: int = 0
    ) -> Transcription | None:
        self.partial_calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "reported"), [(ASRFailed("partial broke"), True), (ModelLoadFailed("no model"), False)]
)
async def test_a_failed_partial_is_reported_unless_the_model_is_missing(error, reported) -> None:
    asr = FailingPartials(error)
    harness = Harness(asr, partial_interval_ms=100)
    harness.start()
    await harness.feed(utterance(), pace=0.03)
    await harness.events.wait_for(lambda e: isinstance(e, SpeechStopped))
    assert asr.partial_calls >= 1
    errors = harness.events.of(ErrorEvent)
    turn_id = harness.events.of(SpeechStarted)[0].turn_id
    if reported:
        assert errors and all((e.code, e.turn_id) == ("ASR_FAILED", turn_id) for e in errors)
    else:  # the final reports a missing model, once per utterance
        assert errors == []
    assert not harness.events.of(PartialTranscript)
    assert [k for k in harness.kinds() if k is not ErrorEvent] == [SpeechStarted, PendingTurn, SpeechStopped]
    await harness.close()
