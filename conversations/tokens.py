"""API tokens for programmatic WebSocket clients.

A token is ``vt_`` plus 43 URL-safe random characters.  It is shown once when
created; the database keeps only its SHA-256 hash and first characters, so a
leaked database does not leak working tokens.  A token may expire: an expired token is
refused like a revoked one, and ``API_TOKEN_MAX_DAYS`` caps the lifetime of new tokens.

Tokens are not throttled like password log-ins: 256 random bits cannot be guessed, so
the WebSocket is no way around the log-in lock-out.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.utils import timezone

from .models import ApiToken
from .retry import retry_transient
from .signals import announce_access_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger(__name__)

PREFIX = "vt_"
PREFIX_CHARS = 8
LAST_USED_RESOLUTION = timedelta(minutes=1)
LIFETIME_DAYS = (30, 90, 365)


def lifetime_choices() -> list[int | None]:
    """Lifetimes offered for a new token, in days (None: never expires), within API_TOKEN_MAX_DAYS."""
    longest = settings.API_TOKEN_MAX_DAYS
    if not longest:
        return [*LIFETIME_DAYS, None]
    return sorted({days for days in LIFETIME_DAYS if days < longest} | {longest})


def hash_token(raw: str) -> str:
    """The SHA-256 hex digest stored in place of the token."""
    return hashlib.sha256(raw.encode()).hexdigest()


@retry_transient
def create_token(user, name: str, *, days: int | None = None) -> tuple[ApiToken, str]:
    """Create a named token for ``user`` that expires in ``days`` (None: never, if the server allows).

    The raw token is returned this once and never stored.
    """
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name")
    longest = settings.API_TOKEN_MAX_DAYS
    if days is not None and days < 1:
        raise ValueError("a token must live at least one day")
    if longest and (days is None or days > longest):
        raise ValueError(f"this server allows tokens of at most {longest} days")
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        key_prefix=raw[:PREFIX_CHARS],
        key_hash=hash_token(raw),
        expires_at=None if days is None else timezone.now() + timedelta(days=days),
    )
    return token, raw


@retry_transient
def authenticate_token(raw: str) -> tuple[AbstractBaseUser, int] | None:
    """The active user and token id for ``raw``, or None if unknown, revoked, expired or the user is inactive.

    ``last_used_at`` is refreshed at most once a minute so busy clients do not write on every connect.
    """
    if not raw or not raw.startswith(PREFIX):
        return None
    token = ApiToken.objects.usable().select_related("user").filter(key_hash=hash_token(raw)).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        try:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        except DatabaseError:  # bookkeeping: a database refusing writes must not refuse the client
            logger.warning("could not record when API token %s was used", token.pk, exc_info=True)
    return token.user, token.pk


@retry_transient
def credential_is_active(user_id: int, token_id: int | None) -> bool:
    """Whether a session's credential still authenticates: its API token (``token_id``) not revoked,
    not expired and its user active; without a token (a browser's log-in), the user still active.

    Open sessions check this periodically, and when told of a change (``signals.py``), so revoking a
    token, its expiry or deactivating the account ends them.
    """
    if token_id is None:
        return get_user_model().objects.filter(pk=user_id, is_active=True).exists()
    return ApiToken.objects.usable().filter(pk=token_id, user_id=user_id).exists()


@retry_transient
def revoke_token(user, token_id) -> bool:
    """Revoke one of ``user``'s tokens; False if it is not theirs, unknown or already revoked."""
    try:
        key = int(token_id)
    except (TypeError, ValueError):
        return False
    revoked = ApiToken.objects.filter(pk=key, user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        announce_access_changed(user.pk)
    return revoked == 1
