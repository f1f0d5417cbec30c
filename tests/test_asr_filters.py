"""What Whisper makes up: silent audio, invented segments, stock phrases on silence — and real speech kept.

Loudness comes from real recordings (and digital silence or quiet noise beside them);
segments are faster-whisper's own ``Segment`` with the scores a test needs.
"""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper.transcribe import Segment

from streaming.asr.filters import frame_rms, hallucinated, invented_on_silence, is_silent
from tests.support.speech import load_clip, noise, silence

SPEECH = ["ps_goforward", "lj_LJ001-0013", "ami_ES2011a_hs0_40-46s"]


def segment(
    text: str = " Thank you.", *, no_speech: float = 0.1, logprob: float = -0.3, compression: float = 1.2
) -> Segment:
    return Segment(
        id=0,
        seek=0,
        start=0.0,
        end=1.0,
        text=text,
        tokens=[],
        avg_logprob=logprob,
        compression_ratio=compression,
        no_speech_prob=no_speech,
        words=None,
        temperature=0.0,
    )


def test_frame_rms_measures_each_30_ms_frame() -> None:
    assert frame_rms(np.zeros(0, dtype=np.int16)).size == 0
    assert frame_rms(np.full(100, 300, dtype=np.int16)).tolist() == [300.0]  # shorter than a frame
    tone = np.concatenate(
        [np.full(480, 1000, dtype=np.int16), np.full(480, -200, dtype=np.int16), np.ones(100)]
    )
    assert frame_rms(tone.astype(np.int16)).tolist() == [1000.0, 200.0]  # the partial last frame is left out


@pytest.mark.parametrize(
    "audio", [silence(0), silence(2.0), noise(1.0, rms=3)], ids=["empty", "zeros", "hiss"]
)
def test_digital_silence_is_not_worth_a_whisper_call(audio) -> None:
    assert is_silent(frame_rms(audio))


@pytest.mark.parametrize("name", SPEECH)
def test_real_speech_is_not_silent(name) -> None:
    assert not is_silent(frame_rms(load_clip(name)))
    # Long silence around it does not hide it: one frame above digital silence is enough.
    assert not is_silent(frame_rms(np.concatenate([silence(5.0), load_clip(name), silence(5.0)])))


def test_quiet_room_noise_is_not_digital_silence() -> None:
    assert not is_silent(frame_rms(noise(1.0, rms=60)))


@pytest.mark.parametrize("text", ["Thank you.", " you", "Thanks for watching!", "BYE", "So...", "The end."])
def test_a_stock_phrase_on_quiet_audio_is_invented(text) -> None:
    quiet = frame_rms(noise(2.0, rms=60))
    assert invented_on_silence(text, quiet, [segment(text, no_speech=0.1)])


def test_a_stock_phrase_whisper_doubts_is_invented_even_when_loud() -> None:
    loud = frame_rms(load_clip("ps_goforward"))
    assert invented_on_silence("Thank you.", loud, [segment(no_speech=0.3), segment(no_speech=0.8)])


@pytest.mark.parametrize("name", SPEECH)
def test_a_stock_phrase_really_spoken_is_kept(name) -> None:
    # A real "Thank you." has speech loudness and a no-speech probability of 0.2-0.5.
    loud = frame_rms(load_clip(name))
    assert not invented_on_silence("Thank you.", loud, [segment(no_speech=0.5)])


@pytest.mark.parametrize("text", ["Go forward ten meters.", "Thank you, Abbie.", "you know", ""])
def test_other_text_is_never_taken_for_a_stock_phrase(text) -> None:
    quiet = frame_rms(noise(2.0, rms=60))
    assert not invented_on_silence(text, quiet, [segment(text, no_speech=0.9)])


@pytest.mark.parametrize(
    ("scores", "invented"),
    [
        ({"compression": 2.5}, True),  # a repetition loop
        ({"no_speech": 0.7, "logprob": -0.8}, True),  # likely not speech, decoded without confidence
        ({"no_speech": 0.7, "logprob": -0.5}, False),  # doubted, but decoded with confidence
        ({"no_speech": 0.5, "logprob": -1.5}, False),  # unsure, but probably speech
        ({"compression": 2.4, "no_speech": 0.6, "logprob": -0.7}, False),  # every rule at its limit
        ({}, False),
    ],
)
def test_a_segment_is_hallucinated_when_it_loops_or_is_confidently_not_speech(scores, invented) -> None:
    assert hallucinated(segment(**scores)) is invented
