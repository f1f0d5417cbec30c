"""A revoked token, a deactivated account or a deleted conversation ends the live sessions it
authenticated (or held), at once.

The change is announced (``conversations/signals.py``) and every session of the user re-checks its
credential (``streaming/web/notices.py``); the periodic check stays as the fallback.  Here the
periodic check is an hour away unless a test says otherwise, so an end within the test proves the
notice.  Redis as the carrier between workers: test_redis_outage.py and test_shutdown_daphne.py.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete
from django.test import Client as HttpClient
from django.urls import reverse

from conversations.deletion import delete_conversation
from conversations.models import Conversation
from conversations.signals import announce_conversation_deleted
from conversations.tokens import revoke_token
from streaming.web import consumer as consumers
from tests.support.wsclient import connect_as, make_user, open_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_periodic_check(monkeypatch):
    monkeypatch.setattr(consumers, "ACCESS_CHECK_INTERVAL_S", 3600.0)


async def browser_session(user):
    """A session authenticated by the log-in cookie, as the chat page opens it."""
    http = HttpClient()
    await sync_to_async(http.force_login)(user)
    headers = [
        (b"cookie", f"sessionid={http.cookies['sessionid'].value}".encode()),
        (b"origin", b"http://localhost:8000"),
        (b"host", b"localhost:8000"),
    ]
    client, connected = await open_client("/ws", headers)
    assert connected
    await client.until_type("session")
    return client


async def still_answers(client, text: str) -> None:
    await client.send(type="text", text=text)
    await client.until_type("turn_complete", timeout=20)


async def ended_unauthorized(client) -> None:
    error = await client.until_type("error", timeout=10)
    assert (error["code"], error["recoverable"]) == ("UNAUTHORIZED", False)
    assert await client.until_closed() == 4401


async def token_ids(user) -> list[int]:
    return await sync_to_async(list)(user.api_tokens.order_by("pk").values_list("pk", flat=True))


async def test_revoking_a_token_ends_its_session_at_once_and_only_it(
    scripted_engines, stream_config, no_periodic_check
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    revoked, kept, browser, bobs = (
        await connect_as(alice),
        await connect_as(alice),
        await browser_session(alice),
        await connect_as(bob),
    )
    await sync_to_async(revoke_token)(alice, (await token_ids(alice))[0])
    await ended_unauthorized(revoked)
    for client, text in ((kept, "another token"), (browser, "the log-in"), (bobs, "someone else")):
        await still_answers(client, text)
        await client.close()


async def test_deactivating_an_account_ends_all_its_sessions(
    scripted_engines, stream_config, no_periodic_check
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    token_session, browser = await connect_as(alice), await browser_session(alice)
    bobs = await connect_as(bob)
    alice.is_active = False
    await sync_to_async(alice.save)()
    await ended_unauthorized(token_session)
    await ended_unauthorized(browser)
    await still_answers(bobs, "still here")
    await bobs.close()


async def test_the_periodic_check_ends_a_browser_session_the_notice_missed(
    scripted_engines, stream_config, monkeypatch
) -> None:
    """A change no notice announced (a bulk update in the database) is still found by the check."""
    monkeypatch.setattr(consumers, "ACCESS_CHECK_INTERVAL_S", 0.5)
    alice = await make_user("alice")
    browser = await browser_session(alice)
    await sync_to_async(get_user_model().objects.filter(pk=alice.pk).update)(is_active=False)
    await ended_unauthorized(browser)


async def test_deleting_a_conversation_ends_its_live_session_at_once(
    scripted_engines, stream_config, no_periodic_check
) -> None:
    """Deleted on the history page while a tab still talks in it: the session ends (4404, not to be
    resumed) instead of answering words it could no longer store; the user's other session goes on."""
    alice = await make_user("alice")
    doomed, other = await connect_as(alice), await connect_as(alice)
    await still_answers(doomed, "something to keep the conversation")
    conversation_id = doomed.of_type("session")[0]["conversation_id"]
    http = HttpClient()
    await sync_to_async(http.force_login)(alice)
    response = await sync_to_async(http.post)(reverse("history-delete", args=[conversation_id]))
    assert response.status_code == 302
    error = await doomed.until_type("error", timeout=10)
    assert (error["code"], error["recoverable"]) == ("UNAUTHORIZED", False)
    assert "deleted" in error["message"]
    assert await doomed.until_closed() == 4404
    assert not await sync_to_async(Conversation.objects.filter(pk=conversation_id).exists)()
    await still_answers(other, "my own conversation")
    await other.close()


async def test_the_periodic_check_ends_a_session_whose_conversation_went_unannounced(
    scripted_engines, stream_config, monkeypatch
) -> None:
    monkeypatch.setattr(consumers, "ACCESS_CHECK_INTERVAL_S", 0.5)
    alice = await make_user("alice")
    client = await connect_as(alice)
    await still_answers(client, "hello")
    conversation_id = client.of_type("session")[0]["conversation_id"]
    await sync_to_async(_delete_without_signals)(conversation_id)
    error = await client.until_type("error", timeout=10)
    assert error["code"] == "UNAUTHORIZED"
    assert await client.until_closed() == 4404


def _delete_without_signals(conversation_id: str) -> None:
    """As a database administrator's DELETE would: no Django signal announces it."""
    post_delete.disconnect(sender=Conversation, dispatch_uid="deletion")
    try:
        assert delete_conversation(conversation_id)
    finally:
        post_delete.connect(announce_conversation_deleted, sender=Conversation, dispatch_uid="deletion")
