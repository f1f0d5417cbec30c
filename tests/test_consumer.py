"""The /ws consumer through the real router: protocol, error matrix, limits, persistence.

Engines are scripted here so every error and timeline is exact; the real-engine
session lives in test_consumer_speech.py.
"""

from __future__ import annotations

import asyncio
import base64
import uuid

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.test import Client as HttpClient

from conversations.models import Conversation, ErrorEvent, Turn
from conversations.tokens import revoke_token
from streaming import errors
from streaming.errors import ASRTimeout, ModelLoadFailed, TTSTimeout
from streaming.web import consumer as consumers
from streaming.web import shutdown
from tests.support.speech import load_clip, silence
from tests.support.wsclient import connect_as, make_token, make_user, open_client

pytestmark = pytest.mark.django_db(transaction=True)


def spoken(name: str = "ps_goforward") -> np.ndarray:
    return np.concatenate([silence(0.3), load_clip(name), silence(1.0)])


async def test_session_event_then_a_voice_turn_is_answered_and_stored(
    scripted_engines, stream_config
) -> None:
    user = await make_user()
    client = await connect_as(user)
    session = client.of_type("session")[0]
    assert session["audio"]["sample_rate"] == 16000 and session["engines"]["llm"] == "scripted-llm"
    await client.send(type="start", sample_rate=16000)
    await client.until_type("info", message="listening")
    await client.send_audio(spoken())
    done = await client.until_type("turn_complete")
    turn_id = done["turn_id"]
    kinds = [m["type"] for m in client.messages if m.get("turn_id") == turn_id]
    assert kinds == [
        "speech_started",
        "speech_stopped",
        "final_transcript",
        "llm_token",
        "llm_token",
        "llm_token",
        "tts_chunk",
        "tts_phrase_done",
        "tts_complete",
        "metrics",
        "turn_complete",
    ]
    final = client.of_type("final_transcript")[0]
    assert final["id"] == turn_id and final["text"] == "hello there"
    chunk = client.of_type("tts_chunk")[0]
    assert chunk["mime"] == "audio/wav" and base64.b64decode(chunk["audio_b64"])[:4] == b"RIFF"
    metrics = client.of_type("metrics")[0]
    assert metrics["endpointing_ms"] is not None and metrics["voice_to_voice_ms"] is not None
    await client.close()
    turn = await sync_to_async(Turn.objects.select_related("metrics", "conversation").get)(turn_id=turn_id)
    assert (turn.user_text, turn.assistant_text, turn.status) == ("hello there", "Hi there.", "completed")
    assert turn.metrics.t2 is not None and turn.metrics.voice_to_voice_ms is not None
    assert turn.conversation.client_kind == "api" and turn.conversation.ended_at is not None


async def test_text_message_and_ws2_alias(scripted_engines, stream_config) -> None:
    user = await make_user()
    client = await connect_as(user, "/ws2")
    await client.send(type="text", text="typed hello")
    final = await client.until_type("final_transcript")
    assert final["text"] == "typed hello" and final["source"] == "text"
    await client.until_type("turn_complete")
    await client.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "BAD_MESSAGE"),
        ('["a list"]', "BAD_MESSAGE"),
        ('{"type": "dance"}', "BAD_MESSAGE"),
        ('{"no": "type"}', "BAD_MESSAGE"),
        ('{"type": "start", "sample_rate": "fast"}', "BAD_MESSAGE"),
        ('{"type": "text", "text": 5}', "BAD_MESSAGE"),
        ('{"type": "playback", "turn_id": 1, "seq": "x"}', "BAD_MESSAGE"),
        ('{"type": "start", "sample_rate": 11025}', "UNSUPPORTED_SAMPLE_RATE"),
        ('{"type": "stop"}', "NOT_STARTED"),
    ],
)
async def test_bad_input_gets_a_recoverable_error_and_the_session_goes_on(
    scripted_engines, stream_config, raw, code
) -> None:
    user = await make_user()
    client = await connect_as(user)
    await client.send_raw(raw)
    error = await client.until_type("error")
    assert (error["code"], error["recoverable"]) == (code, True)
    assert error["message"]
    await client.send(type="text", text="still there?")
    await client.until_type("turn_complete")
    await client.close()


async def test_audio_before_start_and_oversized_frames(scripted_engines, stream_config) -> None:
    stream_config(max_message_bytes=4096)
    user = await make_user()
    client = await connect_as(user)
    await client.ws.send_to(bytes_data=b"\0" * 320)
    assert (await client.until_type("error"))["code"] == "NOT_STARTED"
    await client.send(type="start", sample_rate=16000)
    await client.ws.send_to(bytes_data=b"\0" * 5000)
    error = await client.until_type("error", code="FRAME_TOO_LARGE")
    assert error["recoverable"] is True
    await client.send_audio(spoken(), chunk=4096)
    assert (await client.until_type("final_transcript"))["text"] == "hello there"
    await client.close()


@pytest.mark.parametrize(
    ("break_engine", "code", "recoverable"),
    [
        ("asr_timeout", "ASR_TIMEOUT", True),
        ("asr_failed", "ASR_FAILED", True),
        ("model_load", "MODEL_LOAD_FAILED", False),
        ("llm_error", "LLM_ERROR", True),
        ("llm_timeout", "LLM_TIMEOUT", True),
        ("tts_timeout", "TTS_TIMEOUT", True),
        ("tts_failed", "TTS_FAILED", True),
    ],
)
async def test_engine_failures_map_to_error_codes(
    scripted_engines, stream_config, break_engine, code, recoverable
) -> None:
    stream_config(llm_token_timeout_s=0.5)
    asr, llm, tts = scripted_engines.asr, scripted_engines.llm, scripted_engines.tts

    async def raise_(exc, *args):
        raise exc

    if break_engine == "asr_timeout":
        asr.transcribe_final = lambda audio, **_: raise_(ASRTimeout("longer than STREAM_ASR_TIMEOUT_S"))
    elif break_engine == "asr_failed":
        asr.finals = []
    elif break_engine == "model_load":
        asr.transcribe_final = lambda audio, **_: raise_(ModelLoadFailed("Whisper model /x is missing"))
    elif break_engine == "llm_error":
        llm.fail_after = 1
    elif break_engine == "llm_timeout":
        llm.stall_after = 1
    elif break_engine == "tts_timeout":
        tts.synthesize = lambda text, seq=0: raise_(TTSTimeout("espeak-ng is slow"))
    else:
        tts.fail_on = "there"
    user = await make_user()
    client = await connect_as(user)
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(spoken())
    error = await client.until_type("error")
    assert (error["code"], error["recoverable"]) == (code, recoverable)
    # The user is told in plain words; the engine's account (a setting, a library) stays in the log.
    told = next(cls.public_message for cls in vars(errors).values() if getattr(cls, "code", None) == code)
    assert error["message"] == told
    await client.send(type="text", text="are you ok")
    await client.until_type("turn_complete", timeout=10)
    await client.close()
    stored = await sync_to_async(list)(ErrorEvent.objects.values_list("code", "message"))
    assert (code, told) in stored


async def test_cancel_mid_capture_and_mid_reply(scripted_engines, stream_config) -> None:
    scripted_engines.llm.replies = [["One", " two", " three", " four."]]
    scripted_engines.llm.delay = 0.3
    user = await make_user()
    client = await connect_as(user)
    await client.send(type="start", sample_rate=16000)
    clip = load_clip("lj_LJ001-0001")
    await client.send_audio(np.concatenate([silence(0.3), clip[: len(clip) // 3]]))
    started = await client.until_type("speech_started")
    await client.send(type="cancel")
    stopped = await client.until_type("speech_stopped")
    assert stopped["turn_id"] == started["turn_id"] and stopped["reason"] == "cancelled"
    await client.send_audio(silence(0.5))
    await client.send(type="text", text="count please")
    await client.until_type("llm_token")
    await client.send(type="cancel")
    interrupted = await client.until_type("interrupted")
    assert interrupted["reason"] == "cancel"
    done = await client.until_type("turn_complete")
    assert done["status"] == "cancelled"
    assert not [m for m in client.of_type("final_transcript") if m["turn_id"] == started["turn_id"]]
    await client.close()
    turn = await sync_to_async(Turn.objects.get)(turn_id=done["turn_id"])
    assert turn.status == "cancelled"


async def test_barge_in_with_playback_report_stores_what_was_heard(scripted_engines, stream_config) -> None:
    stream_config(barge_in=True)
    scripted_engines.llm.replies = [
        ["This reply is long.", " It has a second sentence.", " And a third."],
        ["Ok."],
    ]
    scripted_engines.tts.seconds_per_char = 0.1
    user = await make_user()
    client = await connect_as(user)
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(spoken())
    chunk = await client.until_type("tts_chunk")
    await client.send_audio(spoken("ps_cards_005"))
    interrupted = await client.until_type("interrupted")
    assert interrupted["turn_id"] == chunk["turn_id"] and interrupted["reason"] == "barge_in"
    await client.send(type="playback", turn_id=chunk["turn_id"], seq=0, played_s=chunk["duration_s"] / 2)
    await client.until(lambda m: m.get("type") == "turn_complete" and m["turn_id"] != chunk["turn_id"])
    await client.close()
    turn = await sync_to_async(Turn.objects.get)(turn_id=chunk["turn_id"])
    assert turn.status == "interrupted" and turn.assistant_text == "This reply"
    assert turn.assistant_text_generated == "This reply is long. It has a second sentence. And a third."


async def test_disconnect_mid_utterance_stores_the_turn(scripted_engines, stream_config) -> None:
    user = await make_user()
    client = await connect_as(user)
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await client.until_type("speech_started")
    await client.close()
    turns = await sync_to_async(list)(Turn.objects.values_list("user_text", "status"))
    assert turns == [("hello there", "cancelled")]
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.end_reason == "client_closed"


async def test_authentication_matrix(scripted_engines, stream_config) -> None:
    user = await make_user()
    token = await make_token(user)
    # anonymous
    _, ok = await open_client("/ws")
    assert not ok
    # token header, no Origin
    client, ok = await open_client("/ws", [(b"authorization", f"Bearer {token}".encode())])
    assert ok
    await client.close()
    # token query parameter
    client, ok = await open_client(f"/ws?token={token}")
    assert ok
    await client.close()
    # invalid token
    _, ok = await open_client("/ws", [(b"authorization", b"Bearer vt_wrong")])
    assert not ok
    # session cookie: same-site Origin accepted, foreign Origin or none refused
    http = HttpClient()
    await sync_to_async(http.force_login)(user)
    cookie = f"sessionid={http.cookies['sessionid'].value}".encode()
    host = (b"host", b"localhost:8000")
    client, ok = await open_client("/ws", [(b"cookie", cookie), (b"origin", b"http://localhost:8000"), host])
    assert ok
    assert client.ws is not None
    await client.close()
    for foreign in (b"http://evil.example", b"http://localhost:9000", b"https://localhost", b"null"):
        _, ok = await open_client("/ws", [(b"cookie", cookie), (b"origin", foreign), host])
        assert not ok, foreign
    _, ok = await open_client("/ws", [(b"cookie", cookie), (b"origin", b"http://localhost:8000")])
    assert not ok  # no Host header: the same site cannot be checked
    _, ok = await open_client("/ws", [(b"cookie", cookie)])
    assert not ok
    # revoked token
    token_id = (await sync_to_async(list)(user.api_tokens.values_list("pk", flat=True)))[0]
    await sync_to_async(revoke_token)(user, token_id)
    _, ok = await open_client("/ws", [(b"authorization", f"Bearer {token}".encode())])
    assert not ok


async def test_token_revoked_during_a_session_ends_it(scripted_engines, stream_config, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "ACCESS_CHECK_INTERVAL_S", 0.5)
    user = await make_user()
    client = await connect_as(user)
    token_ids = await sync_to_async(list)(user.api_tokens.values_list("pk", flat=True))
    await sync_to_async(revoke_token)(user, token_ids[0])
    error = await client.until_type("error", timeout=10)
    assert (error["code"], error["recoverable"]) == ("UNAUTHORIZED", False)
    assert await client.until_closed() == 4401


async def test_resume_own_conversation_and_refuse_anothers(scripted_engines, stream_config) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    first = await connect_as(alice)
    conversation_id = first.of_type("session")[0]["conversation_id"]
    await first.send(type="text", text="remember me")
    await first.until_type("turn_complete")
    await first.close()
    token = await make_token(alice)
    again, ok = await open_client(
        f"/ws?conversation={conversation_id}", [(b"authorization", f"Bearer {token}".encode())]
    )
    assert ok
    assert (await again.until_type("session"))["resumed"] is True
    await again.send(type="text", text="second")
    await again.until_type("turn_complete")
    assert [m.content for m in scripted_engines.llm.requests[-1]][-3:] == [
        "remember me",
        "Hi there.",
        "second",
    ]
    await again.close()
    bob_token = await make_token(bob)
    other, ok = await open_client(
        f"/ws?conversation={conversation_id}", [(b"authorization", f"Bearer {bob_token}".encode())]
    )
    assert ok
    error = await other.until_type("error")
    assert (error["code"], error["recoverable"]) == ("UNAUTHORIZED", False)
    assert await other.until_closed() == 4404


async def test_an_id_no_conversation_has_starts_one_that_is_not_resumed(
    scripted_engines, stream_config
) -> None:
    """The client keeps its id (say after its empty conversation was deleted), but nothing was resumed."""
    token = await make_token(await make_user("alice"))
    unused = str(uuid.uuid4())
    client, ok = await open_client(
        f"/ws?conversation={unused}", [(b"authorization", f"Bearer {token}".encode())]
    )
    assert ok
    session = await client.until_type("session")
    assert (session["conversation_id"], session["resumed"]) == (unused, False)
    await client.close()


async def test_session_limits(scripted_engines, stream_config) -> None:
    stream_config(max_sessions_per_user=1)
    user = await make_user()
    first = await connect_as(user)
    token = await make_token(user)
    second, ok = await open_client("/ws", [(b"authorization", f"Bearer {token}".encode())])
    assert ok
    error = await second.until_type("error")
    assert (error["code"], error["recoverable"]) == ("SESSION_LIMIT", False)
    assert await second.until_closed() == 4429
    await first.close()
    third = await connect_as(user)
    await third.close()


async def test_idle_timeout_and_session_expiry(scripted_engines, stream_config) -> None:
    stream_config(idle_timeout_s=1)
    user = await make_user()
    client = await connect_as(user)
    error = await client.until_type("error", timeout=5)
    assert (error["code"], error["recoverable"]) == ("IDLE_TIMEOUT", False)
    await client.until_closed()
    stream_config(idle_timeout_s=300, max_session_s=2)
    client = await connect_as(user)
    for _ in range(4):
        await client.send(type="text", text="keep talking")
        await asyncio.sleep(0.4)
    error = await client.until_type("error", code="SESSION_EXPIRED", timeout=5)
    assert error["recoverable"] is False
    await client.until_closed()


async def test_a_stopping_worker_refuses_new_sessions_with_1012(scripted_engines, monkeypatch) -> None:
    """While it waits for its sessions after SIGTERM, a worker sends new ones elsewhere: they would be
    cut off unfinalized when it exits (the rolling restart of tests/test_cluster.py lost turns so)."""
    user = await make_user()
    monkeypatch.setattr(shutdown, "_draining", True)
    token = await make_token(user)
    client, connected = await open_client("/ws", [(b"authorization", f"Bearer {token}".encode())])
    assert connected
    error = await client.until_type("error")
    assert (error["code"], error["recoverable"]) == ("SHUTTING_DOWN", False)
    assert await client.until_closed() == 1012
    assert not client.of_type("session")
    assert not await sync_to_async(Conversation.objects.exists)()
