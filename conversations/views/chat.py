"""The voice chat page."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from streaming.metrics import METRIC_FIELDS

from ..models import Conversation
from ..services import ConversationNotFound, conversation_transcript


@login_required
def chat(request: HttpRequest) -> HttpResponse:
    """Render the chat page; ``?c=<id>`` resumes one of the user's conversations.

    The page carries the metric fields, so the browser's latency breakdown names what the server measures.
    """
    conversation_id = ""
    transcript: list[dict] = []
    if requested := request.GET.get("c", "").strip():
        conversation_id, transcript = _requested_conversation(request, requested)
    config = settings.STREAM_CONFIG
    stream = {
        "pcm_chunk_size": config.pcm_chunk_size,
        "max_message_bytes": config.max_message_bytes,
        "barge_in": config.barge_in,
        "idle_timeout_s": config.idle_timeout_s,
    }
    context = {
        "conversation_id": conversation_id,
        "transcript": transcript,
        "stream": stream,
        "metric_fields": [asdict(metric) for metric in METRIC_FIELDS],
    }
    return render(request, "chat.html", context)


def _requested_conversation(request: HttpRequest, requested: str) -> tuple[str, list[dict]]:
    """The id and stored turns of conversation ``requested``.

    An id that no conversation has yet is kept, with no turns: a conversation left empty is
    deleted when its session ends, so the reload of a page that said nothing can arrive after the
    deletion, and the socket re-creates the conversation under the same id. Someone else's
    conversation, or an id that is not a UUID, is a 404.
    """
    try:
        key = uuid.UUID(requested)
    except ValueError:
        raise Http404("No such conversation.") from None
    conversation = Conversation.objects.filter(pk=key).first()
    if conversation is None:
        return str(key), []
    if conversation.owner_id != request.user.pk:
        raise Http404("No such conversation.")
    try:
        return str(key), conversation_transcript(key)
    except ConversationNotFound:  # deleted, as empty, since the query above
        return str(key), []
