"""Sign-up (open or closed), log-in and its lock-out, log-out, password change, pages that need login."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


def test_signup_creates_user_logs_in_and_opens_chat(client) -> None:
    page = client.get(reverse("signup"))
    assert page.status_code == 200 and b'name="password1"' in page.content
    response = client.post(
        reverse("signup"), {"username": "carol", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302 and response.url == reverse("chat")
    user = get_user_model().objects.get(username="carol")
    assert user.check_password(PASSWORD)
    chat = client.get(reverse("chat"))
    assert chat.status_code == 200 and chat.context["user"] == user


def test_signup_shows_errors_and_creates_nothing(client) -> None:
    response = client.post(reverse("signup"), {"username": "dave", "password1": "123", "password2": "456"})
    assert response.status_code == 200
    assert response.context["form"].errors["password2"]
    assert b"field-errors" in response.content
    assert not get_user_model().objects.filter(username="dave").exists()


def test_signup_when_logged_in_goes_to_chat(client, alice) -> None:
    client.force_login(alice)
    response = client.get(reverse("signup"))
    assert response.status_code == 302 and response.url == reverse("chat")


def test_login_and_logout(client, alice) -> None:
    assert client.get(reverse("login")).status_code == 200
    bad = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert bad.status_code == 200 and bad.context["form"].non_field_errors()
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response.url == reverse("chat")
    assert client.get(reverse("history")).status_code == 200

    assert client.get(reverse("logout")).status_code == 405, "logging out needs a POST"
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response.url == reverse("login")
    assert client.get(reverse("history")).status_code == 302


def test_login_follows_next(client, alice) -> None:
    response = client.post(
        reverse("login") + "?next=/history/", {"username": "alice", "password": PASSWORD, "next": "/history/"}
    )
    assert response.url == "/history/"


def test_password_change(client, alice) -> None:
    client.force_login(alice)
    assert client.get(reverse("password_change")).status_code == 200
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "another-long-secret",
            "new_password2": "another-long-secret",
        },
    )
    assert response.status_code == 302 and response.url == reverse("password_change_done")
    assert client.get(response.url).status_code == 200
    alice.refresh_from_db()
    assert alice.check_password("another-long-secret")
    assert client.get(reverse("history")).status_code == 200, "the session survives the change"


@pytest.mark.parametrize("name", ["chat", "history", "tokens", "password_change"])
def test_pages_require_login(client, name) -> None:
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"


def test_header_shows_account_links_by_state(client, alice) -> None:
    anonymous = client.get(reverse("login")).content.decode()
    assert reverse("signup") in anonymous and 'action="/accounts/logout/"' not in anonymous
    client.force_login(alice)
    page = client.get(reverse("history")).content.decode()
    assert 'action="/accounts/logout/"' in page and "alice" in page
    assert reverse("admin:index") not in page, "no admin link for non-staff"
    alice.is_staff = True
    alice.save()
    assert reverse("admin:index") in client.get(reverse("history")).content.decode()


def test_chat_page_context_for_the_client(client, alice, settings) -> None:
    client.force_login(alice)
    response = client.get(reverse("chat"))
    assert response.context["conversation_id"] == "" and response.context["transcript"] == []
    assert response.context["stream"]["pcm_chunk_size"] == settings.STREAM_CONFIG.pcm_chunk_size
    page = response.content.decode()
    assert 'id="chat-app"' in page and 'data-ws-path="/ws"' in page
    assert f'data-pcm-chunk-size="{settings.STREAM_CONFIG.pcm_chunk_size}"' in page


def test_static_assets_are_served_locally(client) -> None:
    page = client.get(reverse("login")).content.decode()
    assert "/static/css/base.css" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no CDN: the server has no internet"
    css = client.get("/static/css/base.css")
    assert css.status_code == 200 and b"prefers-color-scheme" in b"".join(css.streaming_content)


def test_closed_signup_says_so_and_creates_nothing(client, settings) -> None:
    settings.ALLOW_SIGNUP = False
    page = client.get(reverse("signup"))
    assert page.status_code == 404
    assert "Sign-up is closed" in page.content.decode() and b'name="password1"' not in page.content
    response = client.post(
        reverse("signup"), {"username": "mallory", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 404
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_closed_signup_is_not_linked(client, settings) -> None:
    login = client.get(reverse("login")).content.decode()
    assert login.count(f'href="{reverse("signup")}"') == 2, "header and log-in page link to sign-up"
    settings.ALLOW_SIGNUP = False
    login = client.get(reverse("login")).content.decode()
    assert reverse("signup") not in login
    assert "Ask an administrator of this server for an account" in login


def _log_in(client, username: str, password: str, address: str = "192.0.2.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_failed_logins_lock_the_account_with_a_clear_page(client, alice, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    for attempt in range(3):
        # Each guess from another address: the account's own count locks it.
        response = _log_in(client, "alice", "wrong", address=f"192.0.2.{10 + attempt}")
        assert response.status_code == (200 if attempt < 2 else 429)
    locked = _log_in(client, "alice", PASSWORD, address="198.51.100.7")
    assert locked.status_code == 429, "the right password does not get through while locked"
    page = locked.content.decode()
    assert "Too many failed log-ins" in page and "Try again in 15 minutes" in page
    assert client.get(reverse("history")).status_code == 302, "not logged in"
    assert _log_in(client, "bob", "whatever", address="198.51.100.8").status_code == 200, "others are not"


def test_failed_logins_lock_the_address(client, alice, django_user_model, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("carol", password=PASSWORD)
    for username in ("dave", "erin", "frank"):  # one guess each at many accounts from one address
        _log_in(client, username, "guess", address="203.0.113.5")
    assert _log_in(client, "carol", PASSWORD, address="203.0.113.5").status_code == 429
    response = _log_in(client, "carol", PASSWORD, address="203.0.113.6")
    assert response.status_code == 302 and response.url == reverse("chat")


def test_a_lock_ends_after_the_lockout_time(client, alice, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        _log_in(client, "alice", "wrong")
    assert _log_in(client, "alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    response = _log_in(client, "alice", PASSWORD)
    assert response.status_code == 302 and response.url == reverse("chat")


def test_logging_into_ones_own_account_does_not_reset_the_count(client, alice, settings) -> None:
    """A guesser with an account of their own cannot clear their address's failures by using it."""
    settings.AXES_FAILURE_LIMIT = 3
    get_user_model().objects.create_user("mallory", password=PASSWORD)
    for _ in range(2):
        _log_in(client, "alice", "guess")
        assert _log_in(client, "mallory", PASSWORD).status_code == 302
        client.post(reverse("logout"))
    assert _log_in(client, "alice", "guess").status_code == 429


def test_wrong_current_passwords_at_a_password_change_lock_the_account(client, alice, settings) -> None:
    """From a session left open, the password cannot be guessed there without limit, then changed."""
    settings.AXES_FAILURE_LIMIT = 3
    client.force_login(alice)

    def change(old_password: str):
        new = {"new_password1": "another-long-secret", "new_password2": "another-long-secret"}
        return client.post(reverse("password_change"), {"old_password": old_password, **new})

    first = change("guess-0")
    assert first.status_code == 200 and "old password was entered incorrectly" in first.content.decode()
    assert change("guess-1").status_code == 200
    assert change("guess-2").status_code == 429
    assert change(PASSWORD).status_code == 429, "the right password does not get through while locked"
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
    client.post(reverse("logout"))
    assert _log_in(client, "alice", PASSWORD, address="198.51.100.9").status_code == 429, "log-in too"


@pytest.mark.django_db(transaction=True)
async def test_lockout_page_through_the_asgi_handler(async_client, settings) -> None:
    """daphne serves Django through its ASGI handler, where django-axes' middleware runs async."""
    settings.AXES_FAILURE_LIMIT = 2
    login = reverse("login")
    for _ in range(2):
        response = await async_client.post(login, {"username": "alice", "password": "wrong"})
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
