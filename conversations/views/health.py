"""``GET /health``: JSON readiness for load balancers and operators."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ..health import Health, check_asr_model, check_channel_layer, check_database
from .operators import is_operator


@never_cache
@require_safe
async def health(request: HttpRequest) -> JsonResponse:
    """200 when this worker can serve sessions (``status`` ``ok``, or ``degraded`` without Redis), else
    503; the body names what is not ready, and to operators why."""
    report = Health(
        database=await sync_to_async(check_database)(),
        channel_layer=await check_channel_layer(),
        asr_model=check_asr_model(),
    )
    body = report.as_dict(detailed=is_operator(request))
    return JsonResponse(body, status=200 if report.serving else 503)
