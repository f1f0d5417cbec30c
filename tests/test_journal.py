"""The journal: durable segments, locks that die with their process, replays that store each write once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from conversations import services
from conversations.journal import Journal, Segment, current_journal, pending_writes
from conversations.models import Conversation, ErrorEvent, Turn, TurnMetrics
from conversations.recorder import ConversationRecorder
from conversations.replay import replay_journal, replayer_for
from conversations.writes import CALLS, BadRecord, Write
from tests.support.dboutage import WriteLock, shorten_lock_wait
from tests.support.wsclient import connect_as, make_user


def write(seq: int, text: str = "hi") -> Write:
    turn = str(uuid.UUID(int=seq))
    return Write.of(seq, services.record_turn, ("c",), {"turn_id": turn, "user_text": text}, time.time())


def test_a_segment_keeps_what_is_not_acknowledged_and_empties_once_all_is(tmp_path) -> None:
    segment = Segment.create(tmp_path, "conv")
    for seq in (1, 2, 3):
        segment.append(write(seq, f"text {seq}"))
    segment.ack(1)
    segment.sync()
    assert [w.seq for w in segment.pending()] == [2, 3]
    assert [w.kwargs["user_text"] for w in segment.pending()] == ["text 2", "text 3"]
    segment.ack(3)
    assert segment.path.stat().st_size == 0 and segment.pending() == []
    segment.append(write(4))
    assert [w.seq for w in segment.pending()] == [4]
    segment.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_segment_names_its_session_for_whoever_replays_it(tmp_path) -> None:
    session = uuid.uuid4()
    segment = Segment.create(tmp_path, "conv", str(session))
    segment.close()
    claimed = Segment.claim(segment.path)
    assert (claimed.conversation_id, claimed.session_key) == ("conv", session.hex)
    claimed.close()
    earlier = tmp_path / "conv.00000000001700000000-0a1b2c3d.jsonl"  # named before sessions were
    earlier.touch()
    old = Segment.claim(earlier)
    assert (old.conversation_id, old.session_key) == ("conv", None)
    old.close()


def test_text_that_cannot_be_stored_still_fits_in_the_journal(tmp_path) -> None:
    segment = Segment.create(tmp_path, "conv")
    segment.append(write(1, "half \ud800 a pair"))
    assert segment.pending()[0].kwargs["user_text"] == "half \ud800 a pair"
    segment.close()


def test_torn_lines_and_unknown_calls_are_skipped_never_run(tmp_path) -> None:
    good = write(1).to_line()
    foreign = json.dumps({"seq": 2, "call": "system", "args": ["rm -rf /"], "kwargs": {}}).encode()
    torn = write(3).to_line()[:25]
    assert [w.seq for w in pending_writes(good + foreign + b"\n" + b"{not json\n" + torn)] == [1]
    with pytest.raises(BadRecord):
        Write.from_record(json.loads(foreign))
    with pytest.raises(TypeError, match="not a journaled write"):
        Write.of(1, services.start_conversation, (), {}, 0.0)
    assert set(CALLS) == {
        "record_turn",
        "finish_turn",
        "record_metrics",
        "record_heard_text",
        "record_settings",
        "record_error",
        "end_conversation",
    }


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def test_a_segment_held_by_another_process_is_claimed_only_once_that_process_dies(tmp_path) -> None:
    """Two workers never replay one file at once, and a killed worker's files become replayable."""
    segment = Segment.create(tmp_path, "conv")
    segment.append(write(1))
    segment.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(segment.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert Segment.claim(segment.path) is None
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        claimed = Segment.claim(segment.path)
        assert claimed is not None and [w.seq for w in claimed.pending()] == [1]
        assert Segment.claim(segment.path) is None  # now we hold it
        claimed.close()
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()


@pytest.fixture
def journal():
    """The test database's journal, its replayer stopped before the database is flushed."""
    yield current_journal()
    replayer_for(current_journal()).stop()


async def journaled_turn(conversation_id: str, write_lock: WriteLock, journal: Journal) -> dict[str, str]:
    """Record a whole interrupted turn while the database is locked; the session ends before it is back.

    Returns the segment's contents, to replay them again later.
    """
    recorder = ConversationRecorder(conversation_id, journal=journal)
    recorder.start()
    turn = str(uuid.uuid4())
    await asyncio.to_thread(write_lock.acquire)
    recorder.record(services.record_turn, conversation_id, turn_id=turn, user_text="hello", at=1.7e9)
    recorder.record(services.record_metrics, turn, {"t2": 1.7e9, "asr_ms": 80.0, "partials": 2})
    recorder.record(
        services.finish_turn,
        turn,
        status="interrupted",
        assistant_text="One two",
        generated_text="One two three four.",
        at=1.7e9 + 3,
    )
    recorder.record(services.record_heard_text, turn, "One")
    recorder.record(
        services.record_error,
        conversation_id,
        code="STORAGE_DELAYED",
        message="later",
        recoverable=True,
        event_id=str(uuid.uuid4()),
        at=1.7e9 + 1,
    )
    await asyncio.sleep(1.0)  # a few failed attempts
    await recorder.aclose()
    replayer_for(journal).stop()  # the process "dies" before the database comes back
    segments = {path.name: path.read_bytes() for path in journal.segment_paths()}
    assert len(segments) == 1 and len(pending_writes(next(iter(segments.values())))) == 5
    return segments


def stored_rows(conversation_id: str) -> list[tuple]:
    turns = list(
        Turn.objects.filter(conversation_id=conversation_id).values_list(
            "turn_id",
            "user_text",
            "status",
            "assistant_text",
            "assistant_text_generated",
            "created_at",
            "completed_at",
        )
    )
    metrics = list(TurnMetrics.objects.values_list("turn__turn_id", "t2", "asr_ms", "partials"))
    errors = list(ErrorEvent.objects.values_list("event_id", "code", "created_at"))
    return [turns, metrics, errors]


@pytest.mark.django_db(transaction=True)
async def test_writes_journaled_in_an_outage_are_stored_exactly_once_after_a_restart(
    monkeypatch, journal
) -> None:
    shorten_lock_wait(monkeypatch)
    user = await make_user()
    conversation = await database_sync_to_async(services.start_conversation)(
        user, client_kind="api", engines={}
    )
    cid = str(conversation.pk)
    write_lock = WriteLock()
    try:
        segments = await journaled_turn(cid, write_lock, journal)
        assert await database_sync_to_async(Turn.objects.count)() == 0
    finally:
        await asyncio.to_thread(write_lock.release)

    # The next process starts: its replay stores everything; a second one finds nothing left.
    first = await asyncio.to_thread(replay_journal, journal)
    assert (first.stored, first.dropped, first.waiting) == (5, 0, 0)
    assert journal.segment_paths() == []
    second = await asyncio.to_thread(replay_journal, journal)
    assert (second.stored, second.dropped) == (0, 0)
    rows = await database_sync_to_async(stored_rows)(cid)
    turns, metrics, errors = rows
    assert [t[1:5] for t in turns] == [("hello", "interrupted", "One", "One two three four.")]
    assert turns[0][5].timestamp() == 1.7e9 and turns[0][6].timestamp() == 1.7e9 + 3
    assert [m[2:] for m in metrics] == [(80.0, 2)]
    assert [(e[1], e[2].timestamp()) for e in errors] == [("STORAGE_DELAYED", 1.7e9 + 1)]

    # A process killed after storing but before acknowledging replays it all again: nothing changes.
    for name, data in segments.items():
        (journal.directory / name).write_bytes(data)
    again = await asyncio.to_thread(replay_journal, journal)
    assert (again.stored, again.dropped) == (5, 0)
    assert await database_sync_to_async(stored_rows)(cid) == rows


@pytest.mark.django_db(transaction=True)
async def test_writes_for_a_conversation_deleted_since_are_dropped_with_a_log_line(
    monkeypatch, journal, caplog
) -> None:
    shorten_lock_wait(monkeypatch)
    user = await make_user()
    conversation = await database_sync_to_async(services.start_conversation)(
        user, client_kind="api", engines={}
    )
    cid = str(conversation.pk)
    write_lock = WriteLock()
    try:
        await journaled_turn(cid, write_lock, journal)
    finally:
        await asyncio.to_thread(write_lock.release)
    await database_sync_to_async(Conversation.objects.filter(pk=cid).delete)()
    report = await asyncio.to_thread(replay_journal, journal)
    assert (report.stored, report.dropped, report.waiting) == (0, 5, 0)
    assert journal.segment_paths() == []
    dropped = [r for r in caplog.records if "can never be stored" in r.getMessage()]
    assert [r.error.split(":")[0] for r in dropped] == ["ConversationNotFound"] + ["TurnNotFound"] * 3 + [
        "ConversationNotFound"
    ]


@pytest.mark.django_db(transaction=True)
async def test_a_new_session_of_the_conversation_stores_the_earlier_sessions_writes_first(journal) -> None:
    """A client reconnecting to its conversation after a crash: the old turns keep their places."""
    user = await make_user()
    conversation = await database_sync_to_async(services.start_conversation)(
        user, client_kind="api", engines={}
    )
    cid = str(conversation.pk)
    old = Segment.create(journal.directory, cid)
    earlier = str(uuid.uuid4())
    old.append(Write.of(1, services.record_turn, (cid,), {"turn_id": earlier, "user_text": "before"}, 0.0))
    old.close()  # as if its process had died
    recorder = ConversationRecorder(cid, journal=journal)
    recorder.start()
    recorder.record(services.record_turn, cid, turn_id=str(uuid.uuid4()), user_text="after")
    await recorder.aclose()
    texts = await database_sync_to_async(list)(
        Turn.objects.order_by("index").values_list("user_text", flat=True)
    )
    assert texts == ["before", "after"]
    assert journal.segment_paths() == []


def test_each_database_has_a_journal_directory_of_its_own(settings, tmp_path, monkeypatch) -> None:
    """A server started on another database (a test, a benchmark) never replays this one's writes."""
    settings.CONVERSATION_JOURNAL_DIR = tmp_path
    mine = current_journal().directory
    assert mine.parent == tmp_path and mine.name.startswith(f"{connection.vendor}-")
    assert current_journal().directory == mine
    monkeypatch.setitem(connection.settings_dict, "NAME", "another")
    assert current_journal().directory != mine


@pytest.mark.django_db(transaction=True)
async def test_a_resumed_session_starts_from_what_the_earlier_session_journaled(
    scripted_engines, journal
) -> None:
    """A client that reconnects while its last session's writes still wait in the journal (the
    database was down when that session closed) resumes with them: the assistant remembers the
    turn and the conversation keeps the settings its client chose, not the older stored ones."""
    user = await make_user()
    conversation = await database_sync_to_async(services.start_conversation)(
        user, client_kind="api", engines={}
    )
    cid, earlier_session = str(conversation.pk), conversation.live_sessions[0]
    old = Segment.create(journal.directory, cid, earlier_session)
    turn, prompt = str(uuid.uuid4()), "Answer as briefly as you can."
    for seq, (fn, args, kwargs) in enumerate(
        [
            (services.record_turn, (cid,), {"turn_id": turn, "user_text": "What is the capital of France?"}),
            (services.finish_turn, (turn,), {"status": "completed", "assistant_text": "Paris."}),
            (services.record_settings, (cid, {"system_prompt": prompt, "chosen": ["system_prompt"]}), {}),
        ],
        start=1,
    ):
        old.append(Write.of(seq, fn, args, kwargs, 0.0))
    old.close()  # its session is gone; the replayer has not come round to it yet

    client = await connect_as(user, f"/ws?conversation={cid}")
    (session,) = client.of_type("session")
    assert session["resumed"] and session["settings"]["system_prompt"] == prompt
    await client.send(type="text", text="And of Spain?")
    await client.until_type("turn_complete")
    await client.close()
    asked = [(m.role, m.content) for m in scripted_engines.llm.requests[-1]]
    assert asked[0] == ("system", prompt)
    assert asked[1:] == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
        ("user", "And of Spain?"),
    ]
    texts = await database_sync_to_async(list)(
        Turn.objects.order_by("index").values_list("user_text", flat=True)
    )
    assert texts == ["What is the capital of France?", "And of Spain?"]


@pytest.mark.django_db(transaction=True)
async def test_a_conversation_whose_process_died_before_any_turn_is_resumed_with_its_settings(
    scripted_engines, journal
) -> None:
    """Its segment's session is detached when replayed; the new session attaches first, so the
    conversation, empty but for its settings, is resumed rather than deleted and begun anew."""
    user = await make_user()
    conversation = await database_sync_to_async(services.start_conversation)(
        user, client_kind="api", engines={}
    )
    cid, prompt = str(conversation.pk), "Answer as briefly as you can."
    old = Segment.create(journal.directory, cid, conversation.live_sessions[0])
    settings = {"system_prompt": prompt, "chosen": ["system_prompt"]}
    old.append(Write.of(1, services.record_settings, (cid, settings), {}, 0.0))
    old.close()  # killed: its session never detached
    client = await connect_as(user, f"/ws?conversation={cid}")
    (session,) = client.of_type("session")
    assert session["resumed"] and session["settings"]["system_prompt"] == prompt
    await client.close()
    assert journal.segment_paths() == []
