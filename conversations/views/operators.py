"""Who may read what a worker says about its insides (``/metrics``, ``/health``'s details): this host
(loopback), or a bearer of ``METRICS_TOKEN``.

The client address is the socket's, or behind nginx the one daphne takes from ``X-Forwarded-For``
with ``--proxy-headers``; nginx must set that header, not append to it (``docs/metrics.md``).
"""

from __future__ import annotations

import ipaddress
import secrets

from django.conf import settings
from django.http import HttpRequest


def from_this_host(request: HttpRequest) -> bool:
    """Whether the client address is this host's own (127.0.0.0/8, ::1, or IPv4 loopback in IPv6)."""
    try:
        ip = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:  # no address at all (a UNIX socket without proxy headers): not trusted
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def bears_metrics_token(request: HttpRequest) -> bool:
    """Whether the request carries ``Authorization: Bearer <METRICS_TOKEN>`` (and one is set)."""
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    # Compared in constant time, so the answer's timing does not tell how much of a guess was right.
    return secrets.compare_digest(given.strip().encode(), token.encode())


def is_operator(request: HttpRequest) -> bool:
    """This host, or a bearer of the metrics token."""
    return from_this_host(request) or bears_metrics_token(request)
