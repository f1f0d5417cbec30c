"""API tokens: only a hash is stored, shown once, authenticate, expire, revoke, and the management command."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from conversations.models import ApiToken
from conversations.tokens import (
    authenticate_token,
    create_token,
    credential_is_active,
    hash_token,
    lifetime_choices,
    revoke_token,
)
from tests.support.wsclient import open_client

pytestmark = pytest.mark.django_db


def test_create_stores_only_hash_and_prefix(alice) -> None:
    token, raw = create_token(alice, " laptop ")
    assert raw.startswith("vt_") and len(raw) == 3 + 43
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.name == "laptop"
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert stored.key_prefix == raw[:8]
    assert raw not in {str(value) for value in ApiToken.objects.values_list().get()}


def test_tokens_are_unique(alice) -> None:
    raws = {create_token(alice, f"t{i}")[1] for i in range(5)}
    assert len(raws) == 5


def test_token_needs_a_name(alice) -> None:
    with pytest.raises(ValueError):
        create_token(alice, "   ")


def test_authenticate_returns_user_and_token_id(alice) -> None:
    token, raw = create_token(alice, "cli")
    assert authenticate_token(raw) == (alice, token.pk)
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


@pytest.mark.parametrize("raw", ["", "vt_unknown", "not-even-prefixed", "vt_" + "x" * 43])
def test_authenticate_rejects_unknown_tokens(alice, raw) -> None:
    create_token(alice, "cli")
    assert authenticate_token(raw) is None


def test_last_used_is_refreshed_at_most_once_a_minute(alice) -> None:
    token, raw = create_token(alice, "cli")
    authenticate_token(raw)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    authenticate_token(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    authenticate_token(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first - timedelta(seconds=1)


def test_revoke_stops_authentication_and_activity(alice, bob) -> None:
    token, raw = create_token(alice, "cli")
    assert credential_is_active(alice.pk, token.pk)
    assert not revoke_token(bob, token.pk), "another user cannot revoke it"
    assert authenticate_token(raw) == (alice, token.pk)
    assert revoke_token(alice, str(token.pk))
    assert not revoke_token(alice, token.pk), "already revoked"
    assert authenticate_token(raw) is None
    assert not credential_is_active(alice.pk, token.pk)
    assert not revoke_token(alice, "junk")


def test_inactive_user_cannot_authenticate(alice) -> None:
    token, raw = create_token(alice, "cli")
    assert credential_is_active(alice.pk, None), "a browser's log-in"
    alice.is_active = False
    alice.save()
    assert authenticate_token(raw) is None
    assert not credential_is_active(alice.pk, token.pk)
    assert not credential_is_active(alice.pk, None)


def test_a_token_is_its_owners_credential(alice, bob) -> None:
    token, _ = create_token(alice, "cli")
    assert not credential_is_active(bob.pk, token.pk)


def test_management_command_prints_a_working_token_last(alice) -> None:
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "speaker", stdout=out)
    lines = out.getvalue().strip().splitlines()
    user, token_id = authenticate_token(lines[-1])
    assert user == alice and ApiToken.objects.get(pk=token_id).name == "speaker"
    assert len(lines) > 1, "the token comes after an explanation"


def test_management_command_after_createsuperuser_in_a_shell(tmp_path) -> None:
    """The documented path: createsuperuser --noinput, then create_api_token; the last line is the token."""
    db_path = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SQLITE_PATH": str(db_path),
        "DJANGO_SUPERUSER_USERNAME": "root",
        "DJANGO_SUPERUSER_PASSWORD": "a-long-admin-password",
        "DJANGO_SUPERUSER_EMAIL": "root@example.com",
    }
    env.pop("DATABASE_URL", None)
    manage = f"{sys.executable} {settings.BASE_DIR / 'manage.py'}"
    steps = ("migrate --noinput -v0", "createsuperuser --noinput", "create_api_token root")
    script = " && ".join(f"{manage} {step}" for step in steps)
    result = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr
    raw = result.stdout.strip().splitlines()[-1]
    assert raw.startswith("vt_")
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT u.username, t.revoked_at FROM conversations_apitoken t "
            "JOIN auth_user u ON u.id = t.user_id WHERE t.key_hash = ?",
            (hash_token(raw),),
        ).fetchall()
    assert rows == [("root", None)]


def test_management_command_requires_an_existing_user(db) -> None:
    with pytest.raises(CommandError, match="'ghost' does not exist"):
        call_command("create_api_token", "ghost", stdout=StringIO())


def test_token_page_requires_login(client) -> None:
    response = client.get(reverse("tokens"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_token_page_shows_new_token_once(client, alice) -> None:
    client.force_login(alice)
    response = client.post(reverse("tokens"), {"name": "kitchen speaker", "expires": "never"})
    assert response.status_code == 200
    raw = response.context["new_token"]["raw"]
    assert raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert authenticate_token(raw)[0] == alice

    again = client.get(reverse("tokens"))
    page = again.content.decode()
    assert raw not in page
    assert "kitchen speaker" in page and raw[:8] in page


def test_token_page_requires_a_name(client, alice) -> None:
    client.force_login(alice)
    response = client.post(reverse("tokens"), {"name": "", "expires": "30"})
    assert response.status_code == 200 and response.context["new_token"] is None
    assert response.context["form"].errors["name"]
    assert not ApiToken.objects.exists()


def test_token_page_lists_only_own_tokens(client, alice, bob) -> None:
    create_token(bob, "bobs secret box")
    create_token(alice, "alices laptop")
    client.force_login(alice)
    page = client.get(reverse("tokens")).content.decode()
    assert "alices laptop" in page and "bobs secret box" not in page


def test_revoke_button(client, alice, bob) -> None:
    token, raw = create_token(alice, "cli")
    bobs, _ = create_token(bob, "bob cli")
    client.force_login(alice)
    assert client.get(reverse("token-revoke", args=[token.pk])).status_code == 405
    response = client.post(reverse("token-revoke", args=[token.pk]), follow=True)
    assert "Token revoked" in response.content.decode()
    assert authenticate_token(raw) is None
    assert ApiToken.objects.get(pk=token.pk).revoked_at <= timezone.now()

    client.post(reverse("token-revoke", args=[bobs.pk]))
    assert ApiToken.objects.get(pk=bobs.pk).revoked_at is None


def _expire(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_expired_token_is_refused_like_a_revoked_one(alice) -> None:
    token, raw = create_token(alice, "cli", days=30)
    assert token.expires_at - timezone.now() > timedelta(days=29, hours=23)
    assert authenticate_token(raw) == (alice, token.pk) and credential_is_active(alice.pk, token.pk)
    _expire(token)
    assert authenticate_token(raw) is None
    assert not credential_is_active(alice.pk, token.pk), "an open session using it is ended"


@pytest.mark.django_db(transaction=True)
async def test_websocket_refuses_an_expired_token(alice) -> None:
    token, raw = await sync_to_async(create_token)(alice, "cli", days=30)
    await sync_to_async(_expire)(token)
    _, connected = await open_client("/ws", [(b"authorization", f"Bearer {raw}".encode())])
    assert not connected


def test_token_page_creates_a_token_with_the_chosen_lifetime(client, alice) -> None:
    client.force_login(alice)
    form = client.get(reverse("tokens")).context["form"]
    assert [value for value, _ in form.fields["expires"].choices] == ["30", "90", "365", "never"]
    assert form["expires"].value() == "90"
    response = client.post(reverse("tokens"), {"name": "speaker", "expires": "30"})
    expires_at = ApiToken.objects.get().expires_at
    assert timedelta(days=29, hours=23) < expires_at - timezone.now() <= timedelta(days=30)
    assert f'It expires on <time datetime="{expires_at.isoformat()}"' in response.content.decode()


def test_token_page_shows_expiry_and_expired_status(client, alice) -> None:
    forever, _ = create_token(alice, "forever")
    old, _ = create_token(alice, "old", days=30)
    _expire(old)
    client.force_login(alice)
    page = client.get(reverse("tokens")).content.decode()
    rows = {name: page[page.index(f"<td>{name}</td>") :].split("</tr>")[0] for name in ("forever", "old")}
    assert "never" in rows["forever"] and "Active" in rows["forever"]
    assert "Expired" in rows["old"] and "Revoke" not in rows["old"]


def test_server_maximum_lifetime(client, alice, settings) -> None:
    settings.API_TOKEN_MAX_DAYS = 60
    assert lifetime_choices() == [30, 60]
    with pytest.raises(ValueError, match="at most 60 days"):
        create_token(alice, "forever")
    with pytest.raises(ValueError, match="at most 60 days"):
        create_token(alice, "long", days=90)
    client.force_login(alice)
    response = client.post(reverse("tokens"), {"name": "forever", "expires": "never"})
    assert response.context["form"].errors["expires"] and not ApiToken.objects.exists()
    settings.API_TOKEN_MAX_DAYS = 10
    assert lifetime_choices() == [10]


def test_management_command_token_lifetime(alice, settings) -> None:
    out = StringIO()
    call_command("create_api_token", "alice", "--days", "7", stdout=out)
    assert "expires" in out.getvalue()
    assert ApiToken.objects.get().expires_at - timezone.now() > timedelta(days=6, hours=23)
    settings.API_TOKEN_MAX_DAYS = 5
    with pytest.raises(CommandError, match="at most 5 days"):
        call_command("create_api_token", "alice", "--days", "7", stdout=StringIO())
    call_command("create_api_token", "alice", "--name", "capped", stdout=StringIO())
    capped = ApiToken.objects.get(name="capped").expires_at - timezone.now()
    assert timedelta(days=4, hours=23) < capped <= timedelta(days=5), "the maximum is the default"
