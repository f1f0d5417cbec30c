"""``GET /history/<id>/turns.json``: the stored state of a conversation's latest turns.

The chat page asks for it after a reconnect or a reload, to settle the turns whose outcome it
missed (a reply cut off by a restart, a turn the previous page's session was still finishing) and
to learn whether a message it sent just before the connection dropped was kept.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .lookup import conversation_or_404

DEFAULT_LAST = 20
MAX_LAST = 100
FIELDS = ("turn_id", "source", "status", "user_text", "assistant_text")


@never_cache
@login_required
@require_safe
def conversation_turns(request: HttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    """The ``?last=N`` most recent turns (default 20, at most 100), oldest first."""
    conversation = conversation_or_404(request, conversation_id)
    last = _bounded_count(request.GET.get("last"))
    rows = list(conversation.turns.order_by("-index").values(*FIELDS)[:last])
    turns = [{**row, "turn_id": str(row["turn_id"])} for row in reversed(rows)]
    return JsonResponse({"conversation_id": str(conversation.pk), "turns": turns})


def _bounded_count(value: str | None) -> int:
    try:
        count = int(value) if value else DEFAULT_LAST
    except ValueError:
        count = DEFAULT_LAST
    return min(max(count, 1), MAX_LAST)
