"""``GET /metrics``: Prometheus metrics of this host's workers, for loopback or a bearer of
``METRICS_TOKEN`` (``operators.py``)."""

from __future__ import annotations

import asyncio

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .. import prometheus
from .operators import bears_metrics_token, from_this_host


@never_cache
@require_safe
async def metrics(request: HttpRequest) -> HttpResponse:
    """The exposition text; 404 to other addresses when no token is set, 401 without the right one."""
    if not from_this_host(request):
        if not settings.METRICS_TOKEN:
            raise Http404
        if not bears_metrics_token(request):
            response = HttpResponse("A valid METRICS_TOKEN bearer token is required.\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    body = await asyncio.to_thread(prometheus.exposition)
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
