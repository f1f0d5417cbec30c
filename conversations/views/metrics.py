"""``GET /metrics``: Prometheus metrics of this host's workers, for loopback or a bearer of ``METRICS_TOKEN``.

The client address is the socket's, or behind nginx the one daphne takes from ``X-Forwarded-For``
with ``--proxy-headers``; nginx must set that header, not append to it (``docs/metrics.md``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .. import prometheus


@never_cache
@require_safe
async def metrics(request: HttpRequest) -> HttpResponse:
    """The exposition text; 404 to other addresses when no token is set, 401 without the right one."""
    if not _is_loopback(request.META.get("REMOTE_ADDR", "")):
        if not settings.METRICS_TOKEN:
            raise Http404
        if not _bearer_matches(request.headers.get("Authorization", ""), settings.METRICS_TOKEN):
            response = HttpResponse("A valid METRICS_TOKEN bearer token is required.\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    body = await asyncio.to_thread(prometheus.exposition)
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _is_loopback(address: str) -> bool:
    """Whether ``address`` is this host's own (127.0.0.0/8, ::1, or IPv4 loopback mapped into IPv6)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # no address at all (a UNIX socket without proxy headers): not trusted
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    # Compared in constant time, so the answer's timing does not tell how much of a guess was right.
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())
