"""A real conversation through the real router: tiny.en, webrtcvad, offline responder, espeak-ng, DB."""

from __future__ import annotations

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from conversations.models import Turn
from tests.support.speech import load_clip, normalize_text, silence, word_error_rate
from tests.support.wsclient import connect_as, make_user

pytestmark = pytest.mark.django_db(transaction=True)

CLIPS = {
    "lj_LJ001-0004": (
        "produced the block books which were the immediate predecessors of the true printed book"
    ),
    "ps_goforward": "go forward ten meters",
}


async def test_multi_utterance_session_with_real_engines_is_streamed_and_stored(settings) -> None:
    settings.STREAM_CONFIG = settings.STREAM_CONFIG.replace(barge_in=False)
    client = await connect_as(await make_user())
    session = client.of_type("session")[0]
    assert session["engines"]["llm_offline"] is True and "tiny.en" in session["engines"]["asr"]
    assert session["engines"]["tts"] == "piper:en_US-joe-medium"
    assert session["engines"]["voice"] == "Joe, English (United States)"
    await client.send(type="start", sample_rate=48000)  # a browser rate: resampled to 16 kHz
    for name in CLIPS:
        clip = np.concatenate([silence(0.4), load_clip(name), silence(1.2)])
        upsampled = np.repeat(clip, 3)  # 16 kHz → 48 kHz
        await client.send_audio(upsampled, chunk=9600, pace=0.02)
    await client.until(
        lambda m: m.get("type") == "turn_complete" and len(client.of_type("turn_complete")) == 2, 120
    )
    await client.close()

    finals = client.of_type("final_transcript")
    assert len(finals) == 2
    wer = word_error_rate(list(CLIPS.values()), [normalize_text(f["text"]) for f in finals])
    assert wer < 0.2, [f["text"] for f in finals]
    for final in finals:
        kinds = [m["type"] for m in client.messages if m.get("turn_id") == final["id"]]
        assert kinds[0] == "speech_started"
        order = ["speech_stopped", "final_transcript", "llm_token", "tts_chunk", "tts_complete", "metrics"]
        assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order)
        assert kinds[-1] == "turn_complete"
    turns = await sync_to_async(list)(Turn.objects.select_related("metrics").order_by("index"))
    assert [t.turn_id.hex for t in turns] == [f["id"].replace("-", "") for f in finals]
    for turn in turns:
        assert turn.status == "completed" and turn.assistant_text and turn.audio_duration_s > 1
        assert turn.metrics.endpointing_ms is not None and turn.metrics.asr_rtf is not None


async def test_adaptive_turn_detection_answers_a_finished_command_after_a_short_pause(settings) -> None:
    """Real Whisper, Smart Turn, webrtcvad, espeak-ng: the turn ends at ~300 ms, says why, is stored."""
    settings.STREAM_CONFIG = settings.STREAM_CONFIG.replace(turn_detection="adaptive", vad_silence_ms=700)
    client = await connect_as(await make_user())
    session = client.of_type("session")[0]
    assert session["turn_detection"]["mode"] == "adaptive"
    assert session["engines"]["turn_detector"] == "smart-turn-v3.2"
    await client.send(type="start", sample_rate=16000)
    clip = np.concatenate([silence(0.4), load_clip("ps_goforward"), silence(1.5)])
    await client.send_audio(clip, chunk=1600, pace=0.1)  # real time: the verdict races the pause
    await client.until(lambda m: m.get("type") == "turn_complete", 60)
    await client.close()

    (stopped,) = client.of_type("speech_stopped")
    assert stopped["reason"] == "end_of_turn"
    (metrics,) = client.of_type("metrics")
    assert metrics["end_rule"] == "complete" and 300 <= metrics["end_pause_ms"] < 700
    assert metrics["reply_speculative"] is True
    (turn,) = await sync_to_async(list)(Turn.objects.select_related("metrics"))
    assert normalize_text(turn.user_text) == CLIPS["ps_goforward"]
    assert (turn.metrics.end_rule, turn.metrics.end_pause_ms) == ("complete", metrics["end_pause_ms"])
    assert turn.metrics.end_score >= 0.95 and turn.metrics.reply_speculative
