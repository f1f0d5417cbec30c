"""VAD segmentation on real speech: boundaries, pre-roll, pauses, maximum length, noise."""

from __future__ import annotations

import numpy as np
import pytest

from streaming.audio import SAMPLE_RATE
from streaming.config import StreamConfig
from streaming.vad import (
    SilenceStart,
    SpeechDiscarded,
    SpeechResume,
    SpeechStart,
    UtteranceEnd,
    VadSegmenter,
    VadState,
)
from tests.support.speech import clip_info, load_clip, manifest, noise, silence, speech_only

CLIPS = ["ps_goforward", "lj_LJ001-0013", "librivox_sns01_0880", "ps_cards_005", "ls_1272-128104-0000"]


def segmenter(**overrides) -> VadSegmenter:
    options = dict(
        aggressiveness=2,
        frame_ms=30,
        silence_ms=700,
        preroll_ms=300,
        start_ms=90,
        max_utterance_s=30,
        min_speech_ms=200,
    )
    options.update(overrides)
    return VadSegmenter(**options)


def run(vad: VadSegmenter, audio: np.ndarray, chunk: int = 2560) -> list:
    events = []
    for offset in range(0, len(audio), chunk):
        events += vad.feed(audio[offset : offset + chunk])
    return events


def onset(clip: np.ndarray) -> int:
    """First 10 ms frame louder than a tenth of the loudest one: where the speech really starts."""
    rms = np.sqrt(np.mean(clip[: len(clip) // 160 * 160].reshape(-1, 160).astype(np.float64) ** 2, axis=1))
    return int(np.argmax(rms > 0.1 * rms.max())) * 160


def s(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_one_utterance_per_clip_with_sensible_boundaries(frame_ms):
    parts, placed = [silence(1.0)], []
    for name in CLIPS:
        clip = load_clip(name)
        placed.append((sum(map(len, parts)), clip, clip_info(name)))
        parts += [clip, silence(1.0)]
    vad = segmenter(frame_ms=frame_ms)
    events = run(vad, np.concatenate(parts))

    ends = [e for e in events if isinstance(e, UtteranceEnd)]
    starts = [e for e in events if isinstance(e, SpeechStart)]
    assert len(ends) == len(CLIPS) == len(starts)
    assert vad.flush() is None and not vad.in_speech
    for end, start, (offset, clip, info) in zip(ends, starts, placed, strict=True):
        assert end.reason == "silence"
        assert end.start_sample == start.start_sample
        assert offset - s(1.0) < end.start_sample <= offset + onset(clip)
        assert abs(end.speech_end_sample - (offset + s(info.speech_end_s))) <= s(0.6)
        audio_end = end.start_sample + len(end.audio)
        assert end.speech_end_sample + s(0.05) <= audio_end <= end.speech_end_sample + s(0.25)


def test_preroll_keeps_the_first_syllable():
    clip = load_clip("ls_1272-128104-0000")
    audio = np.concatenate([silence(1.0), clip, silence(1.0)])
    true_onset = s(1.0) + onset(clip)
    without = [e for e in run(segmenter(preroll_ms=0), audio) if isinstance(e, SpeechStart)]
    with_preroll = [e for e in run(segmenter(preroll_ms=300), audio) if isinstance(e, SpeechStart)]
    assert abs(without[0].start_sample - true_onset) <= s(0.1)
    assert with_preroll[0].start_sample == without[0].start_sample - s(0.3)
    assert with_preroll[0].start_sample <= true_onset - s(0.2)


def test_short_pause_gives_silence_start_and_resume_not_an_end():
    first, second = load_clip("lj_LJ001-0013"), load_clip("librivox_sns01_0880")
    audio = np.concatenate([silence(0.5), first, silence(0.4), second, silence(1.0)])
    first_end = s(0.5) + s(clip_info("lj_LJ001-0013").speech_end_s)
    second_onset = s(0.5) + len(first) + s(0.4) + onset(second)
    events = run(segmenter(), audio)

    assert [type(e) for e in events].count(UtteranceEnd) == 1
    assert isinstance(events[0], SpeechStart) and isinstance(events[-1], UtteranceEnd)
    pause = next(
        i for i, e in enumerate(events) if isinstance(e, SilenceStart) and e.at_sample > first_end - s(0.3)
    )
    assert abs(events[pause].at_sample - first_end) <= s(0.25)
    assert isinstance(events[pause + 1], SpeechResume)
    assert abs(events[pause + 1].at_sample - second_onset) <= s(0.3)


def test_audio_at_silence_start_is_the_final_audio():
    audio = np.concatenate([silence(0.5), load_clip("ps_cards_005"), silence(1.0)])
    vad = segmenter()
    snapshots = []
    for offset in range(0, len(audio), 480):
        for event in vad.feed(audio[offset : offset + 480]):
            if isinstance(event, SilenceStart):
                snapshots.append(vad.utterance_audio())
            if isinstance(event, UtteranceEnd):
                assert np.array_equal(snapshots[-1], event.audio)
                return
    pytest.fail("no utterance end")


def test_max_utterance_splits_a_monologue_and_loses_nothing():
    speech = np.concatenate([load_clip(n) for n in ("lj_LJ001-0001", "lj_LJ001-0003", "lj_LJ001-0005")])
    vad = segmenter(max_utterance_s=5, silence_ms=2000)
    events = run(vad, speech)
    events.append(vad.flush("stop"))

    ends = [e for e in events if isinstance(e, UtteranceEnd)]
    assert len(ends) >= len(speech) // s(5)
    assert all(e.reason == "max_length" for e in ends[:-1]) and ends[-1].reason == "stop"
    assert all(len(e.audio) <= s(5) + s(0.03) for e in ends)
    for previous, following in zip(ends, ends[1:], strict=False):
        assert following.start_sample == previous.start_sample + len(previous.audio)
    covered = np.concatenate([e.audio for e in ends])
    first = ends[0].start_sample
    assert np.array_equal(covered, speech[first : first + len(covered)])
    assert first <= onset(speech) and first + len(covered) >= s(clip_info("lj_LJ001-0001").duration_s) * 2
    starts = [e for e in events if isinstance(e, SpeechStart)]
    assert [e.start_sample for e in starts] == [e.start_sample for e in ends]


@pytest.mark.parametrize(
    "audio",
    [silence(5.0), noise(5.0, rms=100), noise(5.0, rms=300, seed=3)],
    ids=["silence", "noise-100", "noise-300"],
)
def test_silence_and_low_noise_give_no_utterance(audio):
    vad = VadSegmenter.from_config(StreamConfig())
    assert run(vad, audio) == []
    assert vad.flush() is None
    assert vad.utterance_audio().size == 0


def test_click_shorter_than_min_speech_is_dropped():
    clip = load_clip("lj_LJ001-0013")
    burst = np.concatenate([silence(1.0), clip[s(0.05) : s(0.2)], silence(1.5)])
    vad = segmenter(start_ms=60, min_speech_ms=300)
    short = run(vad, burst)
    assert [type(e) for e in short] == [SpeechStart, SilenceStart, SpeechDiscarded]
    assert short[2].start_sample == short[0].start_sample
    assert vad.state is VadState.QUIET and not vad.in_speech
    kept = run(segmenter(start_ms=60, min_speech_ms=60), burst)
    assert [type(e) for e in kept] == [SpeechStart, SilenceStart, UtteranceEnd]
    stopped = segmenter(start_ms=60, min_speech_ms=300)
    assert [type(e) for e in run(stopped, burst[: s(1.2)])] == [SpeechStart]
    assert stopped.flush("stop") is None and not stopped.in_speech


def test_flush_ends_the_utterance_in_progress():
    clip = load_clip("lj_LJ001-0006")
    vad = segmenter()
    events = run(vad, np.concatenate([silence(0.5), clip[: len(clip) // 2]]), chunk=1001)
    assert [type(e) for e in events][0] is SpeechStart and vad.in_speech
    assert len(vad.utterance_audio()) == vad.position - events[0].start_sample
    ended = vad.flush("stop")
    assert ended is not None and ended.reason == "stop" and ended.start_sample == events[0].start_sample
    assert ended.start_sample + len(ended.audio) == s(0.5) + len(clip) // 2
    assert not vad.in_speech and vad.flush() is None


def test_chunking_does_not_change_events():
    audio = np.concatenate([silence(0.7), load_clip("ps_goforward"), silence(1.0)])

    def summary(chunk: int) -> list:
        return [
            (type(e).__name__, *(len(v) if isinstance(v, np.ndarray) else v for v in vars(e).values()))
            for e in run(segmenter(), audio, chunk=chunk)
        ]

    assert summary(len(audio)) == summary(333) == summary(5120)


def _speech_ends(vad: VadSegmenter, audio: np.ndarray) -> list[int]:
    return [e.speech_end_sample for e in run(vad, audio, chunk=1600) if isinstance(e, UtteranceEnd)]


@pytest.mark.parametrize("noise_rms", [0, 60], ids=["clean", "noise"])
def test_tail_gate_places_speech_end_nearer_the_speech(noise_rms):
    """webrtcvad keeps saying "speech" for ~80 ms after it ends; the gate ends it at the quiet frames."""
    lags: dict[int, list[int]] = {0: [], 30: []}
    for info in manifest():
        clip = load_clip(info.filename.removesuffix(".wav"))
        audio = np.concatenate([silence(0.8), clip, silence(1.5)]).astype(np.int32)
        audio += noise(len(audio) / SAMPLE_RATE, rms=noise_rms)
        audio = np.clip(audio, -32768, 32767).astype(np.int16)
        true_end = s(0.8) + s(info.speech_end_s)
        for gate, found in lags.items():
            found.append(_speech_ends(segmenter(frame_ms=20, tail_gate_db=gate), audio)[-1] - true_end)
    assert all(gated <= plain for gated, plain in zip(lags[30], lags[0], strict=True))
    assert np.median(lags[30]) <= np.median(lags[0]) - s(0.02)
    assert np.median(lags[30]) >= -s(0.05)


def test_tail_gate_keeps_quieter_speech_that_follows_loud_speech():
    loud, soft = load_clip("lj_LJ001-0013"), (load_clip("librivox_sns01_0880") * 0.05).astype(np.int16)
    audio = np.concatenate([silence(0.5), loud, silence(0.1), soft, silence(1.5)])
    soft_end = s(0.5) + len(loud) + s(0.1) + s(clip_info("librivox_sns01_0880").speech_end_s)
    ends = _speech_ends(segmenter(frame_ms=20, tail_gate_db=30), audio)
    assert len(ends) == 1
    assert abs(ends[0] - soft_end) <= s(0.25)


def test_adaptive_detection_measures_a_pause_to_where_speech_comes_back():
    """A pause just under the 700 ms limit (500 ms of digital silence between the clips' quiet
    edges): webrtcvad needs ~90 ms of speech to be sure it is back, which the fixed rule counts
    as silence (one utterance cut in two); adaptive detection lets the onset window decide."""
    speech = speech_only()
    audio = np.concatenate([silence(0.3), speech, silence(0.5), speech, silence(1.0)])
    fixed = VadSegmenter.from_config(StreamConfig().replace(vad_silence_ms=700))
    adaptive = VadSegmenter.from_config(StreamConfig().replace(vad_silence_ms=700, turn_detection="adaptive"))
    assert len([e for e in run(fixed, audio) if isinstance(e, UtteranceEnd)]) == 2
    assert len([e for e in run(adaptive, audio) if isinstance(e, UtteranceEnd)]) == 1


def test_a_verdict_shortens_or_lengthens_only_its_own_pause():
    vad = VadSegmenter.from_config(StreamConfig().replace(vad_silence_ms=700, turn_detection="adaptive"))
    paused = [e for e in run(vad, np.concatenate([silence(0.3), speech_only(), silence(0.2)]))]
    (pause,) = [e for e in paused if isinstance(e, SilenceStart)]
    assert vad.end_pause_after(pause.at_sample + 1, 100) is None  # another pause: ignored
    assert vad.end_pause_after(pause.at_sample, 1200) is None  # longer: nothing ends yet
    assert not [e for e in run(vad, silence(0.8)) if isinstance(e, UtteranceEnd)]
    ended = vad.end_pause_after(pause.at_sample, 300)  # already past 300 ms: ends now
    assert isinstance(ended, UtteranceEnd) and ended.at_sample - ended.speech_end_sample >= s(0.3)
    assert vad.end_pause_after(pause.at_sample, 300) is None  # the utterance is over
