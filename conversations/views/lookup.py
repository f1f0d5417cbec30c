"""Finding the requesting user's own objects; anyone else's answer 404, never 403."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from ..models import Conversation


def conversation_or_404(request: HttpRequest, conversation_id: uuid.UUID | str) -> Conversation:
    """The user's conversation with this id; 404 if malformed, unknown or someone else's.

    A 404 rather than a 403 so that other users' conversation ids are not confirmed to exist.
    """
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError:
        raise Http404("No such conversation.") from None
    return get_object_or_404(Conversation.objects.owned_by(request.user), pk=key)
