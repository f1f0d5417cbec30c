"""Conversations, turns, metrics and errors: what the voice pipeline stores and reads back.

The recorder queues the writes (by name, through :mod:`conversations.writes`, so they can be
journaled and replayed); the Channels edge opens and resumes conversations with the rest, on
:mod:`conversations.session_db`'s pool; the chat page reads a transcript.  API tokens have a
module of their own, :mod:`conversations.tokens`.

Plain synchronous functions, called off the event loop.  Each runs one short
transaction and is retried on a transient database error (:mod:`conversations.retry`);
the ones a reconnecting client may repeat are idempotent.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from streaming.metrics import COUNT, FLAG, INSTANT, TEXT

from .models import (
    METRIC_COLUMNS,
    ClientKind,
    Conversation,
    EndReason,
    ErrorEvent,
    Turn,
    TurnMetrics,
    TurnSource,
    TurnStatus,
)
from .retry import retry_transient

TITLE_MAX_CHARS = 80
MEMORY_STATUSES = (TurnStatus.COMPLETED, TurnStatus.INTERRUPTED)


class ConversationNotFound(Exception):
    """The conversation does not exist or belongs to someone else."""


class TurnNotFound(Exception):
    """No turn has this transcript id."""


@retry_transient
def start_conversation(user, *, client_kind: str, engines: dict) -> Conversation:
    """Open a new conversation for ``user`` with a new session attached (its key in ``live_sessions``)."""
    return Conversation.objects.create(
        owner=user,
        client_kind=ClientKind(client_kind),
        engines=dict(engines),
        live_sessions=[str(uuid.uuid4())],
    )


class OpenedConversation(NamedTuple):
    conversation: Conversation
    session_key: str
    """The session attached by this call: its close is told to :func:`end_conversation` with it."""
    resumed: bool
    """The conversation was there already: the session continues it (the ``session`` event says so)."""
    history: list[tuple[str, str]]
    """What was said before (:func:`_memory`); read with the attaching: never attached, then refused."""


def open_conversation(user, conversation_id: str, *, client_kind: str, engines: dict) -> OpenedConversation:
    """Re-open the user's conversation of that id and attach a new session to it.

    An id no conversation has (a new session's chosen id, or one deleted as empty when its
    session ended, see :func:`end_conversation`) starts a new conversation under that id, so a
    client reconnecting to it keeps its id. Another user's id, or one that is not a UUID, raises
    :class:`ConversationNotFound`.
    """
    kind = ClientKind(client_kind)
    key = _parse_uuid(conversation_id)
    if key is None:
        raise ConversationNotFound(str(conversation_id))
    session_key = str(uuid.uuid4())
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=key).first()
        if conversation is None:
            created = Conversation.objects.create(
                id=key, owner=user, client_kind=kind, engines=dict(engines), live_sessions=[session_key]
            )
            return OpenedConversation(created, session_key, resumed=False, history=[])
        if conversation.owner_id != user.pk:
            raise ConversationNotFound(str(conversation_id))
        conversation.ended_at = None
        conversation.end_reason = ""
        conversation.engines = dict(engines)
        conversation.live_sessions = [*conversation.live_sessions, session_key]
        conversation.save(update_fields=["ended_at", "end_reason", "engines", "live_sessions"])
        history = _memory(key)
    return OpenedConversation(conversation, session_key, resumed=True, history=history)


def reread(opened: OpenedConversation) -> OpenedConversation:
    """``opened`` with its conversation and memory read again (earlier sessions' writes were stored since)."""
    key = opened.conversation.pk
    return opened._replace(conversation=Conversation.objects.get(pk=key), history=_memory(key))


def _memory(conversation_key: uuid.UUID) -> list[tuple[str, str]]:
    """(user text, assistant text) of the answered turns, oldest first, to prime the LLM on resume.

    As in a live session: completed turns, and interrupted ones with the text the user heard
    (possibly none: the question still matters for what was said next).
    """
    rows = (
        Turn.objects.filter(conversation_id=conversation_key, status__in=MEMORY_STATUSES)
        .order_by("index")
        .values_list("user_text", "assistant_text")
    )
    return [(user_text, assistant_text) for user_text, assistant_text in rows]


def conversation_exists(conversation_id) -> bool:
    """Whether the conversation is still there (its owner may delete it while a session runs)."""
    key = _parse_uuid(conversation_id)
    return key is not None and Conversation.objects.filter(pk=key).exists()


@retry_transient
def conversation_transcript(conversation_id) -> list[dict[str, Any]]:
    """Every turn, oldest first, as the chat page renders it after a reload."""
    key = _require_conversation(conversation_id)
    turns = Turn.objects.filter(conversation_id=key).order_by("index")
    rows = turns.values_list(
        "turn_id",
        "index",
        "source",
        "user_text",
        "assistant_text",
        "status",
        "created_at",
        "metrics__voice_to_voice_ms",
    )
    return [
        {
            "turn_id": str(turn_id),
            "index": index,
            "source": source,
            "user_text": user_text,
            "assistant_text": assistant_text,
            "status": status,
            "created_at": created_at.isoformat(),
            "voice_to_voice_ms": voice_to_voice_ms,
        }
        for turn_id, index, source, user_text, assistant_text, status, created_at, voice_to_voice_ms in rows
    ]


@retry_transient
def record_turn(
    conversation_id,
    *,
    turn_id: str,
    user_text: str,
    source: str = TurnSource.VOICE,
    audio_duration_s: float | None = None,
    at: float | None = None,
    session_key: str | None = None,
) -> None:
    """Store the user's side of a turn as the next in order; a repeated ``turn_id`` is ignored.

    ``at`` (epoch seconds) is when the transcript was made, so a write stored late keeps its time;
    ``session_key`` is the session recording it (see :func:`end_conversation`).
    """
    kind = TurnSource(source)
    turn_key = _parse_uuid(turn_id)
    if turn_key is None:
        raise ValueError(f"turn_id {turn_id!r} is not a UUID")
    with transaction.atomic():
        # Locking the conversation row serialises index assignment between concurrent writers.
        key = _parse_uuid(conversation_id)
        conversation = Conversation.objects.select_for_update().filter(pk=key).first() if key else None
        if conversation is None:
            raise ConversationNotFound(str(conversation_id))
        if Turn.objects.filter(turn_id=turn_key).exists():
            return
        last = conversation.turns.order_by("-index").values_list("index", flat=True).first()
        Turn.objects.create(
            conversation=conversation,
            index=0 if last is None else last + 1,
            turn_id=turn_key,
            source=kind,
            user_text=user_text,
            audio_duration_s=audio_duration_s,
            session_key=_parse_uuid(session_key),
            created_at=_as_datetime(at) or timezone.now(),
        )
        if not conversation.title and user_text.strip():
            conversation.title = title_from_text(user_text)
            conversation.save(update_fields=["title"])


@retry_transient
def finish_turn(
    turn_id: str, *, status: str, assistant_text: str, generated_text: str = "", at: float | None = None
) -> None:
    """Commit the assistant's reply and how it ended (``at``, epoch seconds, when it did).

    For a reply cut short (interrupted or cancelled) ``assistant_text`` is what
    the user heard and ``generated_text`` the whole reply generated; if the
    client already reported what it played, that heard text stays committed.
    Repeating the call stores the same result.
    """
    final = TurnStatus(status)
    if final == TurnStatus.PENDING:
        raise ValueError("finish_turn needs a final status, not pending")
    with transaction.atomic():
        turn = _locked_turn(turn_id)
        turn.status = final
        turn.completed_at = _as_datetime(at) or timezone.now()
        if final in (TurnStatus.INTERRUPTED, TurnStatus.CANCELLED):
            turn.assistant_text_generated = generated_text or assistant_text
            if not turn.playback_reported:
                turn.assistant_text = assistant_text
        else:
            turn.assistant_text = assistant_text
        turn.save(update_fields=["status", "completed_at", "assistant_text", "assistant_text_generated"])


@retry_transient
def record_heard_text(turn_id: str, heard_text: str) -> None:
    """Commit what the user actually heard of an interrupted reply (the client's playback report).

    The reply generated so far is kept as the generated text, and a turn still
    pending or completed becomes interrupted: a playback report means playback was cut.
    Repeating the call stores the same result.
    """
    with transaction.atomic():
        turn = _locked_turn(turn_id)
        if not turn.playback_reported and not turn.assistant_text_generated:
            turn.assistant_text_generated = turn.assistant_text
        turn.assistant_text = heard_text
        turn.playback_reported = True
        if turn.status in (TurnStatus.PENDING, TurnStatus.COMPLETED):
            turn.status = TurnStatus.INTERRUPTED
            turn.completed_at = turn.completed_at or timezone.now()
        turn.save()


@retry_transient
def record_settings(conversation_id, settings: dict[str, Any]) -> None:
    """Store the settings the conversation's session uses from now on (replacing the previous ones)."""
    key = _require_conversation(conversation_id)
    Conversation.objects.filter(pk=key).update(settings=dict(settings))


@retry_transient
def record_metrics(turn_id: str, metrics: dict[str, Any]) -> None:
    """Store a turn's latency figures (:data:`~conversations.models.METRIC_COLUMNS`, as reported).

    Instants come as epoch seconds, the rest as numbers. Unknown keys are ignored; missing,
    ``None`` or non-finite values are stored as empty (a count as 0). Repeated calls replace
    the previous figures.
    """
    values = {metric.name: _column_value(metric.unit, metrics.get(metric.name)) for metric in METRIC_COLUMNS}
    with transaction.atomic():
        turn = _locked_turn(turn_id)
        TurnMetrics.objects.update_or_create(turn=turn, defaults=values)


@retry_transient
def record_error(
    conversation_id,
    *,
    code: str,
    message: str,
    recoverable: bool,
    turn_id: str | None = None,
    event_id: str | None = None,
    at: float | None = None,
) -> None:
    """Log an error the client was told about; ``turn_id`` links it when that turn was stored.

    An error with an ``event_id`` is stored once however often the call is repeated;
    ``at`` (epoch seconds) is when the client was told.
    """
    key = _require_conversation(conversation_id)
    event_key = _parse_uuid(event_id) if event_id else None
    if event_id and event_key is None:
        raise ValueError(f"event_id {event_id!r} is not a UUID")
    if event_key is not None and ErrorEvent.objects.filter(event_id=event_key).exists():
        return
    turn_key = _parse_uuid(turn_id) if turn_id else None
    turn = Turn.objects.filter(turn_id=turn_key).first() if turn_key else None
    ErrorEvent.objects.create(
        conversation_id=key,
        turn=turn,
        code=code,
        message=message,
        recoverable=recoverable,
        event_id=event_key,
        created_at=_as_datetime(at) or timezone.now(),
    )


@retry_transient
def end_conversation(conversation_id, *, reason: str, session_key=None) -> None:
    """Detach session ``session_key`` (every session, if None); the last one to leave closes it.

    While another session is attached (a second tab, a reload that attached before the old page
    finished closing) the conversation stays open and only this session's replies in progress
    become cancelled; the last session's close cancels every one left, as no one will finish them.
    A conversation closed without turns or errors is deleted: opening the chat page and leaving says
    nothing worth keeping.  A session already detached changes nothing: its journal may be replayed
    after its close (``replay.py`` calls this for the session of every replayed segment, so that the
    session of a process that died is detached too).
    """
    why = EndReason(reason)
    now = timezone.now()
    with transaction.atomic():
        key = _parse_uuid(conversation_id)
        conversation = Conversation.objects.select_for_update().filter(pk=key).first() if key else None
        if conversation is None:
            return  # already deleted: by its owner, or as empty by an earlier close
        leaving = conversation.live_sessions if session_key is None else [str(_parse_uuid(session_key))]
        if not set(leaving) & set(conversation.live_sessions):
            return
        conversation.live_sessions = [s for s in conversation.live_sessions if s not in leaving]
        unfinished = Turn.objects.filter(conversation_id=key, status=TurnStatus.PENDING)
        if conversation.live_sessions:
            unfinished = unfinished.filter(session_key__in=leaving)
        unfinished.update(status=TurnStatus.CANCELLED, completed_at=now)
        if conversation.live_sessions:
            conversation.save(update_fields=["live_sessions"])
            return
        if not conversation.turns.exists() and not conversation.errors.exists():
            conversation.delete()
            return
        conversation.ended_at, conversation.end_reason = now, why
        conversation.save(update_fields=["ended_at", "end_reason", "live_sessions"])


def title_from_text(text: str) -> str:
    """A one-line title: whitespace collapsed, cut at a word boundary with an ellipsis."""
    words = " ".join(text.split())
    if len(words) <= TITLE_MAX_CHARS:
        return words
    cut = words[: TITLE_MAX_CHARS - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"


def _parse_uuid(value) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (ids may come from clients)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _require_conversation(conversation_id) -> uuid.UUID:
    key = _parse_uuid(conversation_id)
    if key is None or not Conversation.objects.filter(pk=key).exists():
        raise ConversationNotFound(str(conversation_id))
    return key


def _locked_turn(turn_id: str) -> Turn:
    key = _parse_uuid(turn_id)
    turn = Turn.objects.select_for_update().filter(turn_id=key).first() if key else None
    if turn is None:
        raise TurnNotFound(str(turn_id))
    return turn


def _column_value(unit: str, value: Any) -> datetime | float | int | str | bool | None:
    if unit == INSTANT:
        return _as_datetime(value)
    if unit == TEXT:
        return str(value) if value else ""
    if unit == FLAG:
        return value is True
    number = _as_float(value)
    if unit == COUNT:
        return int(number) if number is not None and number >= 0 else 0
    return number


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _as_datetime(value: Any) -> datetime | None:
    seconds = _as_float(value)
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)
