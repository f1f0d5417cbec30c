"""Audio bounds through the real router and consumer: a flood is refused and told, a normal client never.

Engines are scripted (exact, cheap finals); the bounds live in the session's inbox.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from conversations.models import Turn
from streaming.session import VoiceSession
from streaming.web import consumer as consumers
from tests.support.speech import load_clip, silence
from tests.support.wsclient import connect_as, make_user

pytestmark = pytest.mark.django_db(transaction=True)

FRAME_S = 0.1


class MeasuredSession(VoiceSession):
    """The real session, noting the most memory its unprocessed audio ever held."""

    most_held_bytes = 0

    def push_audio(self, data: bytes) -> None:
        try:
            super().push_audio(data)
        finally:
            MeasuredSession.most_held_bytes = max(MeasuredSession.most_held_bytes, self.audio_held_bytes)


@pytest.fixture
def measured(scripted_engines, stream_config, monkeypatch) -> None:
    """Enough scripted finals and replies for many utterances, the audio bounds at their defaults."""
    scripted_engines.asr.finals = [f"utterance {n}" for n in range(1, 100)]
    scripted_engines.llm.replies = [["Ok."]] * 100
    monkeypatch.setattr(consumers, "VoiceSession", MeasuredSession)
    MeasuredSession.most_held_bytes = 0
    stream_config(audio_max_speed=3, audio_burst_s=15, max_pending_utterances=3)


def speech(seconds: float) -> np.ndarray:
    """Real utterances with pauses between them, looped to ``seconds``, at 16 kHz."""
    one = np.concatenate([silence(0.3), load_clip("ps_goforward"), silence(0.8)])
    return np.resize(one, round(seconds * 16000))


async def send_paced(client, samples: np.ndarray, rate: int, speed: float) -> None:
    """Send 100 ms frames at ``speed`` times real time (0: as fast as possible)."""
    frame = round(FRAME_S * rate)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index, start in enumerate(range(0, len(samples), frame)):
        await client.ws.send_to(bytes_data=samples[start : start + frame].astype(np.int16).tobytes())
        if speed:
            await asyncio.sleep(max(0.0, began + (index + 1) * FRAME_S / speed - loop.time()))


async def test_a_client_far_faster_than_real_time_is_told_and_its_backlog_stays_bounded(measured) -> None:
    client = await connect_as(await make_user())
    await client.send(type="start", sample_rate=16000)
    await send_paced(client, speech(300.0), 16000, speed=0)  # 5 minutes of audio in a moment
    error = await client.until_type("error", code="AUDIO_TOO_FAST")
    assert error["recoverable"] is True and "dropped" in error["message"]
    assert MeasuredSession.most_held_bytes <= 15 * 16000 * 2
    # The session goes on: what was taken in is transcribed, and the client can still talk.
    await client.until_type("final_transcript")
    await client.send(type="text", text="still there?")
    await client.until(lambda m: m.get("type") == "final_transcript" and m.get("source") == "text")
    await client.close()
    stored = await sync_to_async(Turn.objects.filter(user_text="still there?").count)()
    assert stored == 1


async def test_real_time_and_a_backlog_after_a_network_stall_are_never_refused(measured) -> None:
    client = await connect_as(await make_user())
    await client.send(type="start", sample_rate=48000)  # measured in 48 kHz samples, not bytes
    audio = np.repeat(speech(24.0), 3)
    second = 48000
    await send_paced(client, audio[: 3 * second], 48000, speed=1)
    await send_paced(client, audio[3 * second : 15 * second], 48000, speed=0)  # a 12 s backlog at once
    await send_paced(client, audio[15 * second :], 48000, speed=2.5)
    await send_paced(client, np.zeros(second, dtype=np.int16), 48000, speed=1)
    await client.until(
        lambda m: m.get("type") == "turn_complete" and len(client.of_type("turn_complete")) >= 6
    )
    await client.close()
    assert not [m for m in client.messages if m.get("code") == "AUDIO_TOO_FAST"]
