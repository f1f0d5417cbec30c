"""WebSocket handshake authentication: session cookie with an Origin check, or an API token.

Browsers authenticate with their session cookie and must send an Origin of the
same site: the scheme-less ``host:port`` the request was sent to (its Host header,
itself in ALLOWED_HOSTS), or an origin CSRF_TRUSTED_ORIGINS trusts, matched as Django's
CSRF check matches it (``https://*.example.com`` included).  A cookie is ambient
authority, so a page on another port or host must not ride on it.  Programmatic
clients send ``Authorization: Bearer <token>`` — or, as a weaker fallback that
ends up in proxy logs, ``?token=`` — and may omit Origin.  Anything else is
refused at the handshake (HTTP 403).  A token can be revoked and an account deactivated later, and
a conversation deleted: open sessions ask :func:`why_session_must_end` periodically and when told
(``notices.py``).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError
from django.utils.http import is_same_domain

from conversations.services import conversation_exists
from conversations.session_db import run_off_shared_thread
from conversations.tokens import authenticate_token, credential_is_active
from streaming.errors import StreamError, Unauthorized

logger = logging.getLogger(__name__)


class WebSocketAuthMiddleware:
    """Sets ``scope["user"]`` (and ``api_token_id``) or denies the connection."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin1")).items()}
        scope = dict(scope, query=query)
        raw_token = _bearer(headers.get(b"authorization", b"")) or query.get("token")
        origin = headers.get(b"origin")
        if origin is not None and not _origin_allowed(origin, headers.get(b"host")):
            return await WebsocketDenier()(scope, receive, send)
        if raw_token:
            found = await run_off_shared_thread(authenticate_token, raw_token)
            if found is None:
                return await WebsocketDenier()(scope, receive, send)
            scope["user"], scope["api_token_id"] = found
        elif origin is None:
            scope["user"] = AnonymousUser()  # cookie auth requires a same-site Origin
        return await self.app(scope, receive, send)


def _bearer(value: bytes) -> str | None:
    scheme, _, token = value.decode("latin1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _origin_allowed(origin: bytes, host: bytes | None) -> bool:
    """Is ``origin`` this site: the Host the socket was opened on, or a trusted origin?"""
    value = origin.decode("latin1").strip()
    try:
        parsed = urlparse(value)
    except ValueError:
        return False
    if _trusted_for_csrf(value, parsed.scheme, parsed.netloc):
        return True
    if host is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    same_site = parsed.netloc.lower() == host.decode("latin1").strip().lower()
    return same_site and OriginValidator(None, allowed).valid_origin(parsed)


def _trusted_for_csrf(origin: str, scheme: str, netloc: str) -> bool:
    """Would Django's CSRF check trust this origin through CSRF_TRUSTED_ORIGINS?

    The same rule as ``CsrfViewMiddleware._origin_verified``: an exact entry, or a ``scheme://*.domain``
    entry for that scheme and any subdomain of the domain.
    """
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in trusted:
            pattern = urlparse(trusted)
            if pattern.scheme == scheme and is_same_domain(netloc, pattern.netloc.lstrip("*")):
                return True
        elif origin == trusted:
            return True
    return False


REVOKED = Unauthorized("This sign-in is no longer valid (token revoked or expired, or account deactivated).")
"""How a session ends whose credential stopped authenticating (closed with 4401)."""
DELETED = Unauthorized("This conversation was deleted.")
"""How a session ends whose conversation was deleted (closed with 4404: do not resume it)."""


async def why_session_must_end(
    user_id: int, token_id: int | None, conversation_id: str, log_context: dict
) -> tuple[str, StreamError] | None:
    """None while the session's API token (or, without one, its user) still authenticates and its
    conversation exists; else the end reason and the error to tell.  A database that cannot tell
    lets the session go on."""
    try:
        return await run_off_shared_thread(_access_lost, user_id, token_id, conversation_id)
    except DatabaseError:
        logger.warning("could not check the session's access; will retry", extra=log_context)
        return None


def _access_lost(user_id: int, token_id: int | None, conversation_id: str) -> tuple[str, StreamError] | None:
    if not credential_is_active(user_id, token_id):
        return "unauthorized", REVOKED
    if not conversation_exists(conversation_id):
        return "deleted", DELETED
    return None
