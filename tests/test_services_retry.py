"""conversations.retry: how the services survive a locked database.

SQLite refuses a write under contention ("database is locked"); the services retry the whole
transaction a few times, but not other errors, and not inside a caller's transaction, which is
already lost.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, OperationalError, transaction

from conversations import retry, services
from conversations.models import Turn

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_a_locked_database_is_retried(alice, monkeypatch) -> None:
    """The first transaction fails as SQLite does under write contention; the retry stores the turn."""
    monkeypatch.setattr(retry, "BACKOFF_S", 0.001)
    conversation = services.start_conversation(alice, client_kind="browser", engines={})
    real_atomic = transaction.atomic
    calls = []

    def flaky_atomic(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return real_atomic(*args, **kwargs)

    monkeypatch.setattr(services.transaction, "atomic", flaky_atomic)
    turn_id = str(uuid.uuid4())
    services.record_turn(conversation.pk, turn_id=turn_id, user_text="hello")
    assert len(calls) == 2
    assert Turn.objects.filter(turn_id=turn_id, conversation=conversation).count() == 1


@pytest.mark.django_db(transaction=True)
def test_retries_stop_after_three_and_raise(monkeypatch) -> None:
    monkeypatch.setattr(retry, "BACKOFF_S", 0.001)
    calls = []

    @retry.retry_transient
    def always_locked() -> None:
        calls.append(1)
        raise OperationalError("database is locked")

    with pytest.raises(OperationalError):
        always_locked()
    assert len(calls) == 1 + retry.RETRIES


@pytest.mark.django_db(transaction=True)
def test_other_errors_are_not_retried() -> None:
    calls = []

    @retry.retry_transient
    def broken() -> None:
        calls.append(1)
        raise IntegrityError("duplicate")

    with pytest.raises(IntegrityError):
        broken()
    assert len(calls) == 1


def test_no_retry_inside_a_callers_transaction(db, monkeypatch) -> None:
    """Inside an outer atomic block the transaction is already lost, so retrying cannot help."""
    calls = []

    @retry.retry_transient
    def locked() -> None:
        calls.append(1)
        raise OperationalError("database is locked")

    with pytest.raises(OperationalError), transaction.atomic():
        locked()
    assert len(calls) == 1
