"""WebSocket handshake authentication: session cookie with an Origin check, or an API token.

Browsers authenticate with their session cookie and must send an Origin that
matches ALLOWED_HOSTS (a cookie is ambient authority, so a foreign page must not
ride on it).  Programmatic clients send ``Authorization: Bearer <token>`` — or,
as a weaker fallback that ends up in proxy logs, ``?token=`` — and may omit
Origin.  Anything else is refused at the handshake (HTTP 403).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from conversations.tokens import authenticate_token


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
        if origin is not None and not _origin_allowed(origin):
            return await WebsocketDenier()(scope, receive, send)
        if raw_token:
            found = await database_sync_to_async(authenticate_token)(raw_token)
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


def _origin_allowed(origin: bytes) -> bool:
    try:
        parsed = urlparse(origin.decode("latin1"))
    except ValueError:
        return False
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return OriginValidator(None, allowed).valid_origin(parsed)
