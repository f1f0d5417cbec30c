"""The voice chat page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ..services import conversation_transcript
from .lookup import conversation_or_404


@login_required
def chat(request: HttpRequest) -> HttpResponse:
    """Render the chat page; ``?c=<id>`` resumes one of the user's conversations."""
    conversation_id = ""
    transcript: list[dict] = []
    if requested := request.GET.get("c", "").strip():
        conversation = conversation_or_404(request, requested)
        conversation_id = str(conversation.pk)
        transcript = conversation_transcript(conversation.pk)
    config = settings.STREAM_CONFIG
    stream = {
        "pcm_chunk_size": config.pcm_chunk_size,
        "max_message_bytes": config.max_message_bytes,
        "barge_in": config.barge_in,
        "idle_timeout_s": config.idle_timeout_s,
    }
    context = {"conversation_id": conversation_id, "transcript": transcript, "stream": stream}
    return render(request, "chat.html", context)
