"""Hostile and unlucky input through the real router: clear errors, the session goes on, nothing leaks."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from conversations import retry, services
from conversations.journal import current_journal
from conversations.models import Conversation, ErrorEvent, Turn
from conversations.recorder import ConversationRecorder
from streaming.rate_limit import COMMAND_BURST, COMMANDS_PER_S, SLACK, TYPED_TURN_BURST
from streaming.session import VoiceSession
from streaming.web import consumer as consumers
from tests.support.dboutage import WriteLock, shorten_lock_wait
from tests.support.speech import load_clip, silence
from tests.support.wsclient import connect_as, make_token, make_user, open_client

pytestmark = pytest.mark.django_db(transaction=True)


async def answers_a_typed_turn(client) -> None:
    await client.send(type="text", text="still there?")
    done = await client.until(lambda m: m.get("type") == "turn_complete" and m["status"] == "completed")
    assert done


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "playback", "turn_id": "x", "seq": 0, "played_s": NaN}',
        '{"type": "playback", "turn_id": "x", "seq": 0, "played_s": Infinity}',
        '{"type": "start", "sample_rate": -Infinity}',
        '{"type": "playback", "turn_id": "x", "seq": 0, "played_s": 1e999}',
        "[" * 100_000,
        "[" * 990 + "]" * 990,
        '{"type": "text", "text": "hi", "x": ' + "[" * 5_000 + "]" * 5_000 + "}",
        '{"type": "text", "text": "' + "a" * 40_000 + '"}',
        '{"type": "start", "sample_rate": ' + "9" * 5_000 + "}",
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "overflow",
        "nested-100k",
        "nested-990",
        "deep",
        "oversized",
        "huge-int",
    ],
)
async def test_hostile_json_gets_bad_message_and_the_session_goes_on(
    scripted_engines, stream_config, raw
) -> None:
    user = await make_user()
    client = await connect_as(user)
    await client.send_raw(raw)
    error = await client.until_type("error")
    assert (error["code"], error["recoverable"]) == ("BAD_MESSAGE", True), error
    await answers_a_typed_turn(client)
    await client.close()


async def test_a_playback_report_that_finds_a_defect_gets_internal_error_and_the_session_goes_on(
    scripted_engines, stream_config, monkeypatch
) -> None:
    def broken(self, turn_id, seq, played_s):
        raise ValueError("a defect in playback accounting")

    monkeypatch.setattr(VoiceSession, "heard_text", broken)
    user = await make_user()
    client = await connect_as(user)
    await client.send(type="playback", turn_id="x", seq=0, played_s=0.5)
    error = await client.until_type("error")
    assert (error["code"], error["recoverable"]) == ("INTERNAL_ERROR", True)
    await answers_a_typed_turn(client)
    await client.close()


async def test_two_thousand_frames_before_start_are_one_error_and_a_count(
    scripted_engines, stream_config
) -> None:
    user = await make_user()
    client = await connect_as(user)
    for _ in range(2000):
        await client.ws.send_to(bytes_data=b"\0" * 320)

    def accounted() -> int:
        return sum(m.get("count", 1) for m in client.of_type("error"))

    await client.until(lambda m: accounted() >= 2000, timeout=15)
    errors = client.of_type("error")
    assert {m["code"] for m in errors} == {"NOT_STARTED"} and accounted() == 2000
    assert len(errors) <= 4, [m.get("count") for m in errors]  # one per second at most
    await answers_a_typed_turn(client)
    await client.close()
    rows = await sync_to_async(ErrorEvent.objects.count)()
    assert rows == len(errors)


async def test_a_failure_while_closing_still_frees_the_slot_and_ends_the_conversation(
    scripted_engines, stream_config, monkeypatch
) -> None:
    stream_config(max_sessions_per_user=1)

    async def broken_aclose(self, reason="closed"):
        raise RuntimeError("a defect while closing")

    monkeypatch.setattr(VoiceSession, "aclose", broken_aclose)
    user = await make_user()
    for _ in range(3):
        client = await connect_as(user)  # refused with SESSION_LIMIT if a slot leaked
        await answers_a_typed_turn(client)
        await client.close()
    ended = await sync_to_async(list)(Conversation.objects.values_list("end_reason", flat=True))
    assert ended == ["client_closed"] * 3


async def test_a_lone_surrogate_in_typed_text_is_repaired_and_stored(scripted_engines, stream_config) -> None:
    user = await make_user()
    client = await connect_as(user)
    await client.send_raw(json.dumps({"type": "text", "text": "caf\ud800 au lait\u0000"}))
    final = await client.until_type("final_transcript")
    assert final["text"] == "caf\ufffd au lait"
    await client.until_type("turn_complete")
    await client.close()
    stored = await sync_to_async(list)(Turn.objects.values_list("user_text", "status"))
    assert stored == [("caf\ufffd au lait", "completed")]


async def test_connections_refused_while_the_database_is_locked_free_their_slots(
    scripted_engines, stream_config, monkeypatch
) -> None:
    stream_config(max_sessions_per_user=1)
    shorten_lock_wait(monkeypatch)
    monkeypatch.setattr(retry, "BACKOFF_S", 0.01)
    user = await make_user()
    token = await make_token(user)
    headers = [(b"authorization", f"Bearer {token}".encode())]
    lock = WriteLock()
    await sync_to_async(lock.acquire)()
    try:
        for _ in range(3):
            client, ok = await open_client("/ws", headers)
            assert ok
            error = await client.until_type("error")
            assert (error["code"], error["recoverable"]) == ("STORAGE_UNAVAILABLE", False)
            assert await client.until_closed() == 1013
    finally:
        await sync_to_async(lock.release)()
    client = await connect_as(user)  # refused with SESSION_LIMIT if a refusal had kept its slot
    await answers_a_typed_turn(client)
    await client.close()
    assert consumers.slots.total == 0


async def test_typed_messages_beyond_the_rate_are_refused_and_the_rest_answered(
    scripted_engines, stream_config
) -> None:
    user = await make_user()
    client = await connect_as(user)
    for index in range(10):
        await client.send(type="text", text=f"message {index}")

    def refused() -> int:
        return sum(m.get("count", 1) for m in client.of_type("error") if m["code"] == "TEXT_TOO_FAST")

    taken = TYPED_TURN_BURST + SLACK
    await client.until(lambda m: refused() == 10 - taken, timeout=10)
    assert {(m["code"], m["recoverable"]) for m in client.of_type("error")} == {("TEXT_TOO_FAST", True)}
    await client.until(lambda m: len(client.of_type("turn_complete")) == taken, timeout=30)
    await client.close()
    stored = await sync_to_async(list)(Turn.objects.order_by("index").values_list("user_text", flat=True))
    assert stored == [f"message {index}" for index in range(taken)]


async def test_json_commands_beyond_the_rate_are_refused(scripted_engines, stream_config) -> None:
    user = await make_user()
    client = await connect_as(user)
    for _ in range(COMMAND_BURST + SLACK + 30):
        await client.send(type="cancel")

    def refused() -> int:
        return sum(m.get("count", 1) for m in client.of_type("error") if m["code"] == "MESSAGES_TOO_FAST")

    await client.until(lambda m: refused() >= 25, timeout=10)  # a few tokens come back meanwhile
    await asyncio.sleep(COMMAND_BURST / COMMANDS_PER_S)
    await answers_a_typed_turn(client)
    await client.close()


async def test_a_session_that_said_nothing_leaves_no_conversation_and_can_reconnect(
    scripted_engines, stream_config
) -> None:
    user = await make_user()
    client = await connect_as(user)
    conversation_id = client.of_type("session")[0]["conversation_id"]
    await client.close()
    assert not await sync_to_async(Conversation.objects.exists)()
    token = await make_token(user)
    again, ok = await open_client(
        f"/ws?conversation={conversation_id}", [(b"authorization", f"Bearer {token}".encode())]
    )
    assert ok and (await again.until_type("session"))["conversation_id"] == conversation_id
    await answers_a_typed_turn(again)
    await again.close()
    kept = await sync_to_async(list)(Conversation.objects.values_list("pk", "end_reason"))
    assert [(str(pk), reason) for pk, reason in kept] == [(conversation_id, "client_closed")]


async def test_a_second_tab_closing_leaves_the_first_tabs_conversation_open(
    scripted_engines, stream_config
) -> None:
    """Two tabs on one conversation that holds nothing yet: the tab opened last closes first. The
    conversation is not deleted under the other tab, whose next turn is answered and stored, and it
    ends only when that tab closes too."""
    user = await make_user()
    first = await connect_as(user)
    conversation_id = first.of_type("session")[0]["conversation_id"]
    second = await connect_as(user, f"/ws?conversation={conversation_id}")
    await second.close()
    await asyncio.sleep(0.5)  # a deleted conversation's notice would reach the first tab by now
    await answers_a_typed_turn(first)
    stored = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert stored.ended_at is None and await sync_to_async(stored.turns.count)() == 1
    await first.close()
    stored = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert stored.end_reason == "client_closed"


async def test_playback_reports_sent_while_the_session_closes_are_held_to_the_command_limit(
    scripted_engines, stream_config, monkeypatch
) -> None:
    """While the server closes a session (here: it expired) the client may still report what it
    played; a flood of reports must not queue a write each, holding the close and the shared
    writer thread for as long as the client keeps sending."""
    heard_writes = 0
    record = ConversationRecorder.record

    def counting(self, fn, *args, **kwargs):
        nonlocal heard_writes
        heard_writes += fn is services.record_heard_text
        return record(self, fn, *args, **kwargs)

    monkeypatch.setattr(ConversationRecorder, "record", counting)
    stream_config(max_session_s=2)
    scripted_engines.asr.final_delay = 3.0  # the close waits for the utterance in progress
    client = await connect_as(await make_user())
    await client.send(type="text", text="hello")
    answered = await client.until_type("turn_complete", timeout=10)
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await client.until_type("error", code="SESSION_EXPIRED", timeout=5)
    report = json.dumps({"type": "playback", "turn_id": answered["turn_id"], "seq": 0, "played_s": 0.1})
    began = time.monotonic()
    for _ in range(400):
        await client.ws.send_to(text_data=report)
    await client.until_closed(timeout=15)
    # The burst, and the reports the rate allows in the time the server read them (it closed
    # within 3 s: before the limit, all 400 were written).
    assert 0 < heard_writes <= COMMAND_BURST + SLACK + COMMANDS_PER_S * (time.monotonic() - began)


async def test_a_connect_cut_off_while_its_conversation_opens_leaves_no_session_attached(
    scripted_engines, monkeypatch
) -> None:
    """daphne cancels a consumer whose client left (or at shutdown) whatever it awaits; the database
    thread attaching its session finishes all the same, and that attach must be undone, else the
    conversation stays open in the history for good (and, empty, is never deleted)."""
    attach = services.open_conversation

    def slow_attach(*args, **kwargs):
        time.sleep(0.5)
        return attach(*args, **kwargs)

    monkeypatch.setattr(services, "open_conversation", slow_attach)
    user = await make_user()
    token = await make_token(user)
    client, connected = await open_client("/ws", [(b"authorization", f"Bearer {token}".encode())])
    assert connected  # accepted: the conversation is being opened
    await client.ws.wait(0.1)  # cancels the consumer mid-open, and waits for it to finish
    await asyncio.sleep(1)  # the attaching thread has finished by now in any case
    attached = await sync_to_async(list)(Conversation.objects.values_list("live_sessions", flat=True))
    assert attached in ([], [[]])  # deleted as empty, or at least detached
    assert consumers.slots.total == 0


async def test_a_session_whose_start_fails_after_its_conversation_opened_is_detached(
    scripted_engines, monkeypatch
) -> None:
    def voice_that_will_not_start(*args) -> None:
        raise RuntimeError("the voice would not start")

    monkeypatch.setattr(consumers, "restore_settings", voice_that_will_not_start)
    user = await make_user()
    token = await make_token(user)
    client, connected = await open_client("/ws", [(b"authorization", f"Bearer {token}".encode())])
    assert connected
    with pytest.raises(RuntimeError, match="would not start"):
        await client.ws.wait(10)
    attached = await sync_to_async(list)(Conversation.objects.values_list("live_sessions", flat=True))
    assert attached in ([], [[]])
    assert current_journal().segment_paths() == []  # its recorder closed and gave its segment up
    assert consumers.slots.total == 0
