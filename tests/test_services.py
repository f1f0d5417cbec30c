"""conversations.services: what the voice pipeline stores of a conversation and its turns.

Conversations started, resumed and ended; turns recorded, finished and cut to what was heard; the
memory and transcript read back; errors; writes replayed from the journal. The turns' metrics are in
test_services_metrics.py, the retries on a locked database in test_services_retry.py.
"""

from __future__ import annotations

import uuid

import pytest

from conversations import services
from conversations.models import Conversation, EndReason, ErrorEvent, Turn, TurnMetrics, TurnStatus
from tests.support.conversations import ENGINES, new_turn

pytestmark = pytest.mark.django_db


def test_start_conversation_stores_owner_kind_and_engines(alice) -> None:
    conversation = services.start_conversation(alice, client_kind="api", engines=ENGINES)
    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.owner, stored.client_kind, stored.engines) == (alice, "api", ENGINES)
    assert stored.ended_at is None and stored.end_reason == ""


def test_start_conversation_rejects_unknown_client_kind(alice) -> None:
    with pytest.raises(ValueError):
        services.start_conversation(alice, client_kind="telnet", engines={})


def test_resume_reopens_own_conversation(alice, conversation) -> None:
    new_turn(conversation)
    services.end_conversation(conversation.pk, reason="client_closed")
    opened = services.open_conversation(
        alice, str(conversation.pk), client_kind="browser", engines={"asr": "small"}
    )
    assert opened.conversation.pk == conversation.pk and opened.resumed
    assert opened.session_key not in conversation.live_sessions
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.ended_at is None and stored.end_reason == "" and stored.engines == {"asr": "small"}
    assert stored.live_sessions == [opened.session_key]


def test_an_empty_conversation_is_deleted_when_its_session_ends(alice, conversation) -> None:
    (session,) = conversation.live_sessions
    services.end_conversation(conversation.pk, reason="client_closed", session_key=session)
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    services.end_conversation(conversation.pk, reason="client_closed")  # a late second close is harmless
    with_error = services.start_conversation(alice, client_kind="browser", engines={})
    services.record_error(with_error.pk, code="BAD_MESSAGE", message="not json", recoverable=True)
    services.end_conversation(with_error.pk, reason="client_closed", session_key=with_error.live_sessions[0])
    assert Conversation.objects.get(pk=with_error.pk).end_reason == "client_closed"


@pytest.mark.parametrize("with_a_turn", [False, True])
@pytest.mark.parametrize("newest_closes_first", [False, True])
def test_the_conversation_ends_when_the_last_of_its_sessions_closes(
    alice, conversation, with_a_turn, newest_closes_first
) -> None:
    """Two tabs, or a reload whose new page attaches before the old page has finished closing:
    whichever session closes first, the conversation stays open (empty, it is not deleted) for the
    other, and the close of a session already detached (a journal replayed) changes nothing."""
    if with_a_turn:
        new_turn(conversation)
    (first,) = conversation.live_sessions
    opened = services.open_conversation(alice, str(conversation.pk), client_kind="browser", engines={})
    leaving, staying = (opened.session_key, first) if newest_closes_first else (first, opened.session_key)
    for _replayed in (False, True):
        services.end_conversation(conversation.pk, reason="client_closed", session_key=leaving)
        stored = Conversation.objects.get(pk=conversation.pk)
        assert stored.ended_at is None and stored.live_sessions == [staying]
    services.end_conversation(conversation.pk, reason="idle_timeout", session_key=staying)
    stored = Conversation.objects.filter(pk=conversation.pk).first()
    if with_a_turn:
        assert (stored.end_reason, stored.live_sessions) == ("idle_timeout", [])
    else:
        assert stored is None


def test_a_closing_session_cancels_its_own_unfinished_replies_and_the_last_every_one(
    alice, conversation
) -> None:
    """A session's close (or, for a killed process, the replay of its journal) cancels the replies it
    began, which no one will finish; another session of the conversation (a second tab, the
    reconnected client) keeps its own. The last session to close cancels what is left."""
    (dead,) = conversation.live_sessions
    other = services.open_conversation(
        alice, str(conversation.pk), client_kind="browser", engines={}
    ).session_key
    unfinished = new_turn(conversation, "what time is it", session_key=dead)
    finished = new_turn(conversation, "and the date", session_key=dead)
    services.finish_turn(finished, status="completed", assistant_text="It is Monday.")
    elsewhere = new_turn(conversation, "hello", session_key=other)
    services.end_conversation(str(conversation.pk), reason="server_shutdown", session_key=dead)
    status = dict(Turn.objects.values_list("turn_id", "status"))
    assert status == {
        uuid.UUID(unfinished): TurnStatus.CANCELLED,
        uuid.UUID(finished): TurnStatus.COMPLETED,
        uuid.UUID(elsewhere): TurnStatus.PENDING,
    }
    assert Turn.objects.get(turn_id=unfinished).completed_at is not None
    services.end_conversation(str(conversation.pk), reason="client_closed", session_key=other)
    assert Turn.objects.get(turn_id=elsewhere).status == TurnStatus.CANCELLED


def test_resuming_an_unused_id_starts_a_conversation_under_that_id(alice) -> None:
    """The client reconnects to a conversation that was deleted as empty: it keeps its id."""
    unused = uuid.uuid4()
    started = services.open_conversation(alice, str(unused), client_kind="browser", engines={})
    assert started.conversation.pk == unused and not started.resumed and started.history == []
    assert Conversation.objects.get(pk=unused).owner == alice


@pytest.mark.parametrize("resume_id", ["other-user", "not-a-uuid", ""])
def test_resume_of_someone_elses_or_malformed_id_is_not_found(alice, bob, resume_id) -> None:
    bobs = services.start_conversation(bob, client_kind="browser", engines={})
    target = str(bobs.pk) if resume_id == "other-user" else resume_id
    with pytest.raises(services.ConversationNotFound):
        services.open_conversation(alice, target, client_kind="browser", engines={})
    assert Conversation.objects.get(pk=bobs.pk).owner == bob


def test_record_turn_assigns_order_sets_title_and_is_idempotent(conversation) -> None:
    first = new_turn(conversation, "  What   is the weather\nlike today? ", audio_duration_s=2.5)
    services.record_turn(conversation.pk, turn_id=first, user_text="a retry must not duplicate")
    second = new_turn(conversation, "And tomorrow?", source="text")
    turns = list(conversation.turns.order_by("index"))
    assert [(str(t.turn_id), t.index, t.user_text, t.source) for t in turns] == [
        (first, 0, "  What   is the weather\nlike today? ", "voice"),
        (second, 1, "And tomorrow?", "text"),
    ]
    assert turns[0].audio_duration_s == 2.5 and turns[0].status == TurnStatus.PENDING
    assert Conversation.objects.get(pk=conversation.pk).title == "What is the weather like today?"


def test_title_is_cut_at_a_word_boundary() -> None:
    title = services.title_from_text("word " * 40)
    assert len(title) <= services.TITLE_MAX_CHARS and title.endswith("d…")


def test_record_turn_for_a_missing_conversation_raises(db) -> None:
    with pytest.raises(services.ConversationNotFound):
        services.record_turn(uuid.uuid4(), turn_id=str(uuid.uuid4()), user_text="hi")


def test_finish_turn_commits_reply(conversation) -> None:
    turn_id = new_turn(conversation)
    services.finish_turn(turn_id, status="completed", assistant_text="Hi! How can I help?")
    turn = Turn.objects.get(turn_id=turn_id)
    assert (turn.status, turn.assistant_text, turn.assistant_text_generated) == (
        "completed",
        "Hi! How can I help?",
        "",
    )
    assert turn.completed_at is not None


def test_interrupted_turn_keeps_generated_text_and_commits_what_was_heard(conversation) -> None:
    turn_id = new_turn(conversation)
    services.finish_turn(turn_id, status="interrupted", assistant_text="The weather today is sunny and warm.")
    services.record_heard_text(turn_id, "The weather today")
    turn = Turn.objects.get(turn_id=turn_id)
    assert turn.status == TurnStatus.INTERRUPTED
    assert turn.assistant_text == "The weather today"
    assert turn.assistant_text_generated == "The weather today is sunny and warm."


def test_heard_text_reported_before_finish_stays_committed(conversation) -> None:
    turn_id = new_turn(conversation)
    services.record_heard_text(turn_id, "The weather")
    services.finish_turn(turn_id, status="interrupted", assistant_text="The weather today is sunny.")
    turn = Turn.objects.get(turn_id=turn_id)
    assert (turn.status, turn.assistant_text, turn.assistant_text_generated) == (
        "interrupted",
        "The weather",
        "The weather today is sunny.",
    )


def test_heard_text_after_a_completed_reply_marks_it_interrupted(conversation) -> None:
    turn_id = new_turn(conversation)
    services.finish_turn(turn_id, status="completed", assistant_text="One. Two. Three.")
    services.record_heard_text(turn_id, "One.")
    turn = Turn.objects.get(turn_id=turn_id)
    assert (turn.status, turn.assistant_text, turn.assistant_text_generated) == (
        "interrupted",
        "One.",
        "One. Two. Three.",
    )


def test_finish_or_hear_unknown_turn_raises(db) -> None:
    with pytest.raises(services.TurnNotFound):
        services.finish_turn(str(uuid.uuid4()), status="completed", assistant_text="x")
    with pytest.raises(services.TurnNotFound):
        services.record_heard_text("client-sent-garbage", "x")


def test_finish_turn_refuses_pending_and_unknown_status(conversation) -> None:
    turn_id = new_turn(conversation)
    for status in ("pending", "exploded"):
        with pytest.raises(ValueError):
            services.finish_turn(turn_id, status=status, assistant_text="x")


def test_a_resumed_conversation_continues_from_its_answered_turns_in_order(alice, conversation) -> None:
    answered = new_turn(conversation, "first question")
    services.finish_turn(answered, status="completed", assistant_text="first answer")
    cut = new_turn(conversation, "second question")
    services.finish_turn(cut, status="interrupted", assistant_text="second answer, in full")
    services.record_heard_text(cut, "second")
    failed = new_turn(conversation, "third question")
    services.finish_turn(failed, status="failed", assistant_text="")
    silent = new_turn(conversation, "fourth question")
    services.finish_turn(silent, status="interrupted", assistant_text="")
    new_turn(conversation, "still pending")
    opened = services.open_conversation(alice, str(conversation.pk), client_kind="browser", engines={})
    assert opened.history == [
        ("first question", "first answer"),
        ("second question", "second"),
        ("fourth question", ""),  # interrupted before a word was heard: the question still counts
    ]


def test_transcript_lists_every_turn_with_voice_to_voice(conversation) -> None:
    first = new_turn(conversation, "hello")
    services.finish_turn(first, status="completed", assistant_text="hi")
    services.record_metrics(first, {"voice_to_voice_ms": 812.0})
    second = new_turn(conversation, "are you there")
    transcript = services.conversation_transcript(str(conversation.pk))
    assert [
        (t["turn_id"], t["index"], t["user_text"], t["assistant_text"], t["status"]) for t in transcript
    ] == [
        (first, 0, "hello", "hi", "completed"),
        (second, 1, "are you there", "", "pending"),
    ]
    assert [t["voice_to_voice_ms"] for t in transcript] == [812.0, None]
    with pytest.raises(services.ConversationNotFound):
        services.conversation_transcript(uuid.uuid4())


def test_record_error_links_a_known_turn(conversation) -> None:
    turn_id = new_turn(conversation)
    services.record_error(
        conversation.pk, code="LLM_TIMEOUT", message="slow", recoverable=True, turn_id=turn_id
    )
    services.record_error(
        conversation.pk, code="ASR_FAILED", message="bad audio", recoverable=True, turn_id="nope"
    )
    services.record_error(conversation.pk, code="SHUTTING_DOWN", message="bye", recoverable=False)
    errors = list(ErrorEvent.objects.order_by("created_at", "pk"))
    assert [(e.code, e.recoverable, e.turn and str(e.turn.turn_id)) for e in errors] == [
        ("LLM_TIMEOUT", True, turn_id),
        ("ASR_FAILED", True, None),
        ("SHUTTING_DOWN", False, None),
    ]


def test_every_write_the_journal_replays_stores_the_same_result_twice(conversation) -> None:
    """A write replayed from the journal after it was stored (its acknowledgement lost) changes nothing."""
    event_id, turn_id = str(uuid.uuid4()), str(uuid.uuid4())
    writes = [
        lambda: services.record_turn(conversation.pk, turn_id=turn_id, user_text="hi", at=1.7e9),
        lambda: services.record_metrics(turn_id, {"t2": 1.7e9, "asr_ms": 90.0}),
        lambda: services.finish_turn(
            turn_id,
            status="interrupted",
            assistant_text="One two",
            generated_text="One two three.",
            at=1.7e9 + 2,
        ),
        lambda: services.record_heard_text(turn_id, "One"),
        lambda: services.record_error(
            conversation.pk,
            code="LLM_TIMEOUT",
            message="slow",
            recoverable=True,
            event_id=event_id,
            at=1.7e9 + 1,
        ),
    ]

    def snapshot():
        turn = Turn.objects.values().get(turn_id=turn_id)
        return (turn, list(TurnMetrics.objects.values()), list(ErrorEvent.objects.values()))

    for write in writes:
        write()
    once = snapshot()
    for write in writes:  # in order again, and each one on its own
        write()
        assert snapshot() == once
    turn, _, errors = once
    assert (turn["status"], turn["assistant_text"], turn["assistant_text_generated"]) == (
        "interrupted",
        "One",
        "One two three.",
    )
    assert turn["created_at"].timestamp() == 1.7e9 and turn["completed_at"].timestamp() == 1.7e9 + 2
    assert [(e["code"], e["created_at"].timestamp()) for e in errors] == [("LLM_TIMEOUT", 1.7e9 + 1)]
    with pytest.raises(ValueError, match="not a UUID"):
        services.record_error(conversation.pk, code="X", message="", recoverable=True, event_id="nope")


def test_end_conversation_sets_reason_and_cancels_pending_reply(conversation) -> None:
    done = new_turn(conversation)
    services.finish_turn(done, status="completed", assistant_text="ok")
    pending = new_turn(conversation, "tell me a story")
    services.end_conversation(conversation.pk, reason=EndReason.IDLE_TIMEOUT)
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.ended_at is not None and stored.end_reason == "idle_timeout"
    assert Turn.objects.get(turn_id=done).status == "completed"
    assert Turn.objects.get(turn_id=pending).status == "cancelled"
    with pytest.raises(ValueError):
        services.end_conversation(conversation.pk, reason="bored")
