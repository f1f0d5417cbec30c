"""A user's conversation history: list, detail with latency chart, delete, JSON export."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from streaming.metrics import STAGES

from ..deletion import delete_conversation
from ..export import conversation_export
from ..latency import is_spoken, latency_text, median_voice_to_voice
from ..models import Conversation, Turn, TurnMetrics
from .lookup import conversation_or_404

PAGE_SIZE = 20

# Stacked segments of the latency chart, which add up to voice to voice: (key in the chart
# data, TurnMetrics field, name in the legend and the chart). ASR is drawn inside the
# endpointing segment, not stacked after it.
CHART_SEGMENTS = tuple((stage.segment, stage.name, stage.label) for stage in STAGES if stage.segment)


@login_required
def history_list(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest first, 20 a page; ``?q=`` searches titles and turn text."""
    # PostgreSQL text cannot hold NUL: a query with one would fail there, and match nothing anywhere.
    query = request.GET.get("q", "").replace("\x00", "").strip()
    # A session that ended without a word (a page opened and closed) is not worth listing.
    conversations = (
        Conversation.objects.owned_by(request.user)
        .annotate(turn_count=Count("turns"))
        .filter(turn_count__gt=0)
    )
    if query:
        matching_turns = Turn.objects.filter(conversation=OuterRef("pk")).filter(
            Q(user_text__icontains=query) | Q(assistant_text__icontains=query)
        )
        conversations = conversations.filter(Q(title__icontains=query) | Exists(matching_turns))
    page = Paginator(conversations.order_by("-started_at"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "conversations/history_list.html", {"page": page, "query": query})


@login_required
def history_detail(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """One conversation: each turn's text and status, its errors and a per-turn latency chart.

    The median voice to voice counts spoken turns only (see :mod:`conversations.latency`).
    """
    conversation = conversation_or_404(request, conversation_id)
    turns = [
        (turn, _metrics_of(turn)) for turn in conversation.turns.select_related("metrics").order_by("index")
    ]
    measured = [(turn.source, metrics.voice_to_voice_ms) for turn, metrics in turns if metrics]
    context = {
        "conversation": conversation,
        "turns": [(turn, metrics, metrics and latency_text(turn.source, metrics)) for turn, metrics in turns],
        "v2v_median": median_voice_to_voice(measured),
        "typed_measured": sum(1 for source, ms in measured if not is_spoken(source) and ms is not None),
        "errors": conversation.errors.select_related("turn"),
        "chart": _chart_data(turns),
        "chart_segments": [{"key": key, "name": name} for key, _, name in CHART_SEGMENTS],
    }
    return render(request, "conversations/history_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def history_delete(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """Ask for confirmation on GET; delete the conversation and everything in it on POST."""
    conversation = conversation_or_404(request, conversation_id)
    if request.method == "POST":
        title = str(conversation)
        delete_conversation(conversation.pk)
        messages.success(request, f"Deleted “{title}”.")
        return redirect("history")
    return render(request, "conversations/history_confirm_delete.html", {"conversation": conversation})


@login_required
def history_export(request: HttpRequest, conversation_id: uuid.UUID) -> JsonResponse:
    """The conversation as a JSON download."""
    conversation = conversation_or_404(request, conversation_id)
    response = JsonResponse(conversation_export(conversation), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="conversation-{conversation.pk}.json"'
    return response


def _metrics_of(turn: Turn) -> TurnMetrics | None:
    try:
        return turn.metrics
    except TurnMetrics.DoesNotExist:
        return None


def _chart_data(turns: list[tuple[Turn, TurnMetrics | None]]) -> list[dict[str, object]]:
    """One bar per measured turn for ``static/js/latency-chart.js``; missing stages count as 0.

    Segments: endpointing (speech end → final transcript; for a typed turn, the wait before
    its reply started), LLM first token, TTS first audio. ``asr`` is the final's decoding,
    which happens within the endpointing window, so it is not a segment of its own.
    """
    bars = []
    for turn, metrics in turns:
        if metrics is None:
            continue
        bar: dict[str, object] = {
            "label": f"Turn {turn.index + 1}",
            "status": turn.status,
            "typed": not is_spoken(turn.source),
        }
        for key, field, _ in CHART_SEGMENTS:
            bar[key] = round(getattr(metrics, field) or 0.0, 1)
        bar["asr"] = metrics.asr_ms
        bar["voice_to_voice"] = metrics.voice_to_voice_ms
        bars.append(bar)
    return bars
