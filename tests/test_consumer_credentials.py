"""A revoked token or a deactivated account ends the live sessions it authenticated, at once.

The change is announced (``conversations/signals.py``) and every session of the user re-checks its
credential (``streaming/web/notices.py``); the periodic check stays as the fallback.  Here the
periodic check is an hour away unless a test says otherwise, so an end within the test proves the
notice.  Redis as the carrier between workers: test_redis_outage.py and test_shutdown_daphne.py.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient

from conversations.tokens import revoke_token
from streaming.web import consumer as consumers
from tests.support.wsclient import connect_as, make_user, open_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_periodic_check(monkeypatch):
    monkeypatch.setattr(consumers, "CREDENTIAL_CHECK_INTERVAL_S", 3600.0)


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
    monkeypatch.setattr(consumers, "CREDENTIAL_CHECK_INTERVAL_S", 0.5)
    alice = await make_user("alice")
    browser = await browser_session(alice)
    await sync_to_async(get_user_model().objects.filter(pk=alice.pk).update)(is_active=False)
    await ended_unauthorized(browser)
