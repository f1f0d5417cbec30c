"""bench.turns: the inner pause it lengthens is a real pause, and a short run reports every figure."""

from __future__ import annotations

import json

import numpy as np

from bench import turn_detector, turns
from bench.client import ServerTurn, TurnRecord
from bench.corpus import Clip, load_clips
from streaming.audio import SAMPLE_RATE
from tests.support.speech import load_clip, silence


def _joined(pause_s: float) -> Clip:
    """Two real utterances with a silence of ``pause_s`` between them."""
    first, second = load_clip("ps_goforward"), load_clip("ps_cards_005")
    samples = np.concatenate([first, silence(pause_s), second])
    return Clip("joined", samples, len(samples) / SAMPLE_RATE, "go forward ten meters ...")


def test_the_longest_inner_pause_is_the_silence_between_the_words():
    natural = turns.longest_inner_pause(_joined(0.0))  # the quiet end and start of the recordings
    pause = turns.longest_inner_pause(_joined(0.4))
    assert natural is not None and pause is not None
    assert abs(pause.ms - natural.ms - 400) <= 20  # one 20 ms frame of analysis
    boundary = len(load_clip("ps_goforward"))
    assert pause.start <= boundary <= pause.end


def test_lengthening_inserts_quiet_audio_inside_the_pause_and_moves_the_speech_end():
    clip = _joined(0.0)
    before = turns.longest_inner_pause(clip)
    target = round(before.ms) + 300
    longer = turns.lengthen_pause(clip, target)
    added = len(longer.samples) - len(clip.samples)
    assert added == round((target - before.ms) * SAMPLE_RATE / 1000)
    assert abs(turns.longest_inner_pause(longer).ms - target) <= 20
    assert longer.speech_end_s == clip.speech_end_s + added / SAMPLE_RATE
    second = load_clip("ps_cards_005")
    assert np.array_equal(longer.samples[-len(second) :], second), "the words after the pause are untouched"
    assert turns.lengthen_pause(clip, round(before.ms) - 100).samples is clip.samples  # already long enough
    assert turns.lengthen_pause(load_clips(["librivox_sns01_0880"])[0], 500) is None  # no pause inside


def test_a_cut_at_the_lengthened_pause_is_told_from_a_cut_elsewhere():
    clip = turns.lengthen_pause(_joined(0.0), 800)
    pause = turns.longest_inner_pause(clip)
    speech_end_at = 100.0  # the client's clock when the clip's last word left
    resumed_at = speech_end_at - (clip.speech_end_sample - pause.end) / SAMPLE_RATE

    def record(second_turn_at: float) -> TurnRecord:
        spoken = TurnRecord(clip.name, clip.reference, clip.speech_end_s, started_at=90.0)
        spoken.speech_end_at = speech_end_at
        spoken.turns = [ServerTurn("a", started_at=90.5), ServerTurn("b", started_at=second_turn_at)]
        return spoken

    assert turns.cut_at_longest_pause(record(resumed_at + 0.15), clip)
    assert not turns.cut_at_longest_pause(record(resumed_at - 0.6), clip)  # ended before the pause
    assert not turns.cut_at_longest_pause(record(speech_end_at - 0.2), clip)  # cut after it


def test_a_short_run_reports_cut_offs_latency_wer_and_cpu(tmp_path, capsys):
    out = tmp_path / "turns.json"
    setting = "fixed:STREAM_VAD_SILENCE_MS=700"
    turns.main(["--clips", "2", "--pauses", "0,800", "--setting", setting, "--out", str(out)])
    report = json.loads(out.read_text())
    rows = report["results"]["fixed"]
    assert list(rows) == ["natural", "800 ms"]
    natural = rows["natural"]
    assert natural["utterances"] == 2 and natural["lost"] == 0
    assert natural["voice_to_voice_ms"]["count"] == 2 and natural["wer_pct"] is not None
    assert natural["cpu_per_session_pct"] is not None
    assert rows["800 ms"]["cut_offs"] >= 1, "a pause longer than the 700 ms rule ends the turn early"
    assert rows["800 ms"]["cut_at_pause"] >= 1, "...in that pause"
    assert rows["natural"]["cut_at_pause"] <= natural["cut_offs"]
    printed = capsys.readouterr().out
    assert printed.count("fixed ") == 2


def test_the_offline_detector_comparison_prints_every_detector(capsys):
    turn_detector.main(["--clips", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "judged after a 200 ms pause: 2 ends of speech, 2 inner pauses"
    rows = {line.split("  ")[0].strip(): line for line in lines[3:]}
    assert set(rows) == {"text"} | {f"smart-turn >= {t}" for t in turn_detector.THRESHOLDS}
    assert all("/2 (" in row for row in rows.values())
