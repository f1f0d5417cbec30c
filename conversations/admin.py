"""Admin for conversations, their turns and metrics, errors and API tokens.

Non-superuser staff see only their own rows everywhere, including the latency
summary; metrics, errors and token hashes are read-only.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from streaming.metrics import MS, RATIO, STAGES

from .latency import daily_summary, latency_text
from .models import METRIC_COLUMNS, ApiToken, Conversation, ErrorEvent, Turn, TurnMetrics
from .signals import announce_access_changed

admin.site.site_header = "Parley administration"
admin.site.site_title = "Parley admin"
# The index also says which language model answers and how to connect one (admin_guide.py).
admin.site.index_template = "admin/conversations/index.html"

SUMMARY_DAYS_DEFAULT = 30
SUMMARY_DAYS_MAX = 366


class OwnerScopedAdmin(admin.ModelAdmin):
    """Restricts every view to rows whose ``owner_field`` is the user, unless they are a superuser."""

    owner_field = "owner"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{self.owner_field: request.user})


class ReadOnlyAdmin(OwnerScopedAdmin):
    """Records written by the pipeline: viewable, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ("number", "status", "source", "user_text", "assistant_text", "audio_duration_s", "latency")
    readonly_fields = fields
    ordering = ("index",)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("metrics")

    @admin.display(description="Turn")
    def number(self, turn: Turn) -> int:
        """Counted from 1, as the history pages and ``Turn.__str__`` write it; ``index`` starts at 0."""
        return turn.index + 1

    @admin.display(description="Latency (ms)")
    def latency(self, turn: Turn) -> str:
        try:
            metrics = turn.metrics
        except TurnMetrics.DoesNotExist:
            return "—"
        text = latency_text(turn.source, metrics)
        return " · ".join(part for part in (text.stages, text.total, text.ending) if part) or "—"


@admin.register(Conversation)
class ConversationAdmin(OwnerScopedAdmin):
    list_display = ("__str__", "owner", "started_at", "ended_at", "end_reason", "client_kind", "turn_count")
    search_fields = ("owner__username", "title", "turns__user_text", "turns__assistant_text")
    date_hierarchy = "started_at"
    fields = (
        "title",
        "id",
        "owner",
        "started_at",
        "ended_at",
        "end_reason",
        "client_kind",
        "engines",
        "settings",
    )
    readonly_fields = fields[1:]  # only the title is editable
    inlines = [TurnInline]
    list_select_related = ("owner",)

    def get_list_filter(self, request: HttpRequest) -> list:
        filters = [("started_at", admin.DateFieldListFilter), "turns__status", "client_kind", "end_reason"]
        # The owner filter would list every username, so only superusers, who see all rows, get it.
        return ["owner", *filters] if request.user.is_superuser else filters

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(turn_count=Count("turns", distinct=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Turns", ordering="turn_count")
    def turn_count(self, conversation: Conversation) -> int:
        return conversation.turn_count

    def get_urls(self) -> list:
        latency = path(
            "latency/",
            self.admin_site.admin_view(self.latency_view),
            name="conversations_conversation_latency",
        )
        return [latency, *super().get_urls()]

    def latency_view(self, request: HttpRequest) -> HttpResponse:
        """Per day: measured spoken turns and p50/p95 of each latency stage, for the visible conversations."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = _bounded_int(request.GET.get("days"), SUMMARY_DAYS_DEFAULT, 1, SUMMARY_DAYS_MAX)
        since = timezone.now() - timedelta(days=days)
        metrics = TurnMetrics.objects.filter(turn__created_at__gte=since)
        if not request.user.is_superuser:
            metrics = metrics.filter(turn__conversation__owner=request.user)
        rows = metrics.values_list("turn__created_at", "turn__source", *(stage.name for stage in STAGES))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Latency summary",
            "stages": [stage.label for stage in STAGES],
            "summaries": daily_summary(rows),
            "days": days,
            "day_choices": (7, 30, 90, 365),
        }
        return TemplateResponse(request, "admin/conversations/latency_summary.html", context)


@admin.register(TurnMetrics)
class TurnMetricsAdmin(ReadOnlyAdmin):
    owner_field = "turn__conversation__owner"
    # The durations and the real-time factor; a row's page has the instants and partials too.
    list_display = ("turn", "source", *(f.name for f in METRIC_COLUMNS if f.unit in (MS, RATIO)))
    list_select_related = ("turn",)
    list_filter = (("turn__created_at", admin.DateFieldListFilter), "turn__source")

    @admin.display(description="Source", ordering="turn__source")
    def source(self, metrics: TurnMetrics) -> str:
        """Typed turns have no endpointing or ASR to measure, so their figures read differently."""
        return metrics.turn.get_source_display()


@admin.register(ErrorEvent)
class ErrorEventAdmin(ReadOnlyAdmin):
    owner_field = "conversation__owner"
    list_display = ("code", "message", "recoverable", "created_at", "conversation")
    list_filter = ("code", "recoverable", ("created_at", admin.DateFieldListFilter))
    search_fields = ("code", "message")
    list_select_related = ("conversation",)


@admin.register(ApiToken)
class ApiTokenAdmin(OwnerScopedAdmin):
    owner_field = "user"
    list_display = ("name", "user", "key_prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "user__username", "key_prefix")
    fields = ("name", "user", "key_prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = ("user", "key_prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token must be shown once to its owner, which only the token page and command do.
        return False

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoking = queryset.filter(revoked_at__isnull=True)
        owners = set(revoking.values_list("user_id", flat=True))
        count = revoking.update(revoked_at=timezone.now())
        for user_id in owners:
            announce_access_changed(user_id)
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


def _bounded_int(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(raw), low), high) if raw else default
    except ValueError:
        return default
