"""The recorder under a database outage, through the real consumer: every final the client saw is stored.

The database is taken away for real (another connection holds its write lock,
see tests/dboutage.py) while a session talks with scripted scripted_engines.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from conversations import services
from conversations.models import Conversation, ErrorEvent, Turn
from conversations.recorder import ConversationRecorder
from tests.support.dboutage import WriteLock, shorten_lock_wait
from tests.support.speech import load_clip, silence
from tests.support.wsclient import connect_as, make_user

pytestmark = pytest.mark.django_db(transaction=True)

CLIPS = ("ps_goforward", "ps_cards_005", "ps_goforward")


@pytest.fixture
def short_lock_wait(monkeypatch):
    shorten_lock_wait(monkeypatch)


@pytest.fixture(autouse=True)
def stop_replay():
    """The journal replayer must not outlive the test (its database is flushed next)."""
    yield
    from conversations.journal import current_journal
    from conversations.replay import replayer_for

    replayer_for(current_journal()).stop()


@pytest.fixture
async def write_lock():
    lock = WriteLock()
    yield lock
    await asyncio.to_thread(lock.release)


def spoken(name: str) -> np.ndarray:
    return np.concatenate([silence(0.3), load_clip(name), silence(1.0)])


async def talk(client, clips=CLIPS) -> None:
    """Say each clip and wait until its turn is complete."""
    await client.send(type="start", sample_rate=16000)
    for done, name in enumerate(clips, 1):
        await client.send_audio(spoken(name), pace=0.05)  # twice real time: within the audio bound
        await client.until(
            lambda m, n=done: m["type"] == "turn_complete" and len(client.of_type("turn_complete")) >= n
        )


async def optional(client, predicate, timeout: float) -> dict | None:
    try:
        return await client.until(predicate, timeout)
    except TimeoutError:
        return None


def storage_back(message: dict) -> bool:
    return message.get("type") == "info" and "Storage is back" in message.get("message", "")


async def wait_for(condition, timeout: float = 30.0):
    """Poll ``condition`` (a sync ORM callable) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await sync_to_async(condition)()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_finals_said_while_the_database_is_locked_are_all_stored_in_order(
    scripted_engines, stream_config, short_lock_wait, write_lock
) -> None:
    user = await make_user()
    client = await connect_as(user)
    await asyncio.to_thread(write_lock.acquire)
    await talk(client)
    await asyncio.sleep(1.0)  # the writes keep failing, and are retried, well past the lock wait
    assert await sync_to_async(Turn.objects.count)() == 0  # the outage is real
    await asyncio.to_thread(write_lock.release)
    back = await optional(client, storage_back, timeout=15)
    await client.close()

    finals = [(uuid.UUID(m["id"]), m["text"]) for m in client.of_type("final_transcript")]
    assert [text for _, text in finals] == ["hello there", "second thing", "third"]
    stored = await sync_to_async(list)(Turn.objects.order_by("index").values_list("turn_id", "user_text"))
    assert stored == finals
    statuses = await sync_to_async(list)(Turn.objects.values_list("status", flat=True))
    assert statuses == ["completed"] * 3
    errors = client.of_type("error")
    assert [(e["code"], e["recoverable"]) for e in errors] == [("STORAGE_DELAYED", True)]
    assert back is not None, "the client was not told that storage recovered"
    assert client.messages.index(errors[0]) < client.messages.index(back)
    # The STORAGE_DELAYED error itself is stored once, after the outage, not retried forever.
    codes = await sync_to_async(list)(ErrorEvent.objects.values_list("code", flat=True))
    assert codes == ["STORAGE_DELAYED"]
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.end_reason == "client_closed"


async def test_a_session_closed_during_the_outage_is_stored_from_the_journal(
    scripted_engines, stream_config, short_lock_wait, write_lock
) -> None:
    user = await make_user()
    client = await connect_as(user)
    conversation_id = client.of_type("session")[0]["conversation_id"]
    await asyncio.to_thread(write_lock.acquire)
    await talk(client, CLIPS[:2])
    await client.until_type("error", code="STORAGE_DELAYED")
    started = time.monotonic()
    await client.close()  # the recorder cannot store: it leaves its writes to the journal
    assert time.monotonic() - started < 5, "closing waited on the database"
    assert await sync_to_async(Turn.objects.count)() == 0
    await asyncio.to_thread(write_lock.release)

    def ended_with_turns():
        conversation = Conversation.objects.filter(pk=conversation_id, end_reason="client_closed").first()
        return conversation and conversation.turns.count() == 2

    assert await wait_for(ended_with_turns), "the journal was not replayed"
    finals = [(uuid.UUID(m["id"]), m["text"], "completed") for m in client.of_type("final_transcript")]
    stored = await sync_to_async(list)(
        Turn.objects.order_by("index").values_list("turn_id", "user_text", "status")
    )
    assert stored == finals and len(finals) == 2
    assert await sync_to_async(ErrorEvent.objects.filter(code="STORAGE_DELAYED").count)() == 1


async def test_a_write_that_can_never_succeed_is_dropped_and_does_not_block_the_next(caplog) -> None:
    user = await make_user()
    conversation = await database_sync_to_async(services.start_conversation)(
        user, client_kind="api", engines={}
    )
    notices: list = []

    async def on_delayed(error) -> None:
        notices.append(error)

    recorder = ConversationRecorder(str(conversation.pk), on_delayed=on_delayed)
    recorder.start()
    bad, good = str(uuid.uuid4()), str(uuid.uuid4())
    # A lone surrogate cannot be encoded for SQLite or PostgreSQL: a permanent failure.
    recorder.record(services.record_turn, str(conversation.pk), turn_id=bad, user_text="half \ud800 a pair")
    recorder.record(services.record_turn, str(conversation.pk), turn_id=good, user_text="all fine")
    recorder.record(services.finish_turn, bad, status="completed", assistant_text="answer")
    recorder.record(services.finish_turn, good, status="completed", assistant_text="answer")
    await asyncio.wait_for(recorder.aclose(), 10)
    turns = await database_sync_to_async(list)(Turn.objects.values_list("turn_id", "user_text", "status"))
    assert turns == [(uuid.UUID(good), "all fine", "completed")]
    assert notices == []  # nothing transient: the client is not told storage is delayed
    dropped = [r for r in caplog.records if "can never be stored" in r.getMessage()]
    assert [r.call for r in dropped] == ["record_turn", "finish_turn"]
