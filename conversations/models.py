"""Stored conversations: who spoke, what was said, how long each step took, what failed.

The streaming pipeline never imports these models: its Channels edge goes through
:mod:`conversations.services` (directly and through the recorder) and
:mod:`conversations.tokens`.  Public identifiers (conversation ids, turn ids) are UUIDs so URLs and WebSocket
messages reveal nothing about how many conversations exist.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from streaming.metrics import METRIC_FIELDS


class EndReason(models.TextChoices):
    """Why a conversation's session ended; blank while it is open."""

    CLIENT_CLOSED = "client_closed", "Client closed"
    SERVER_SHUTDOWN = "server_shutdown", "Server shut down"
    IDLE_TIMEOUT = "idle_timeout", "Idle timeout"
    SESSION_EXPIRED = "session_expired", "Session expired"
    SESSION_LIMIT = "session_limit", "Session limit"
    UNAUTHORIZED = "unauthorized", "Unauthorized"
    DELETED = "deleted", "Conversation deleted"
    ERROR = "error", "Error"


class ClientKind(models.TextChoices):
    """The kind of client that opened the session."""

    BROWSER = "browser", "Browser"
    API = "api", "API"


class TurnSource(models.TextChoices):
    """How the user's side of a turn arrived."""

    VOICE = "voice", "Voice"
    TEXT = "text", "Text"


class TurnStatus(models.TextChoices):
    """Where the assistant's reply to a turn ended up."""

    PENDING = "pending", "Reply in progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"
    FAILED = "failed", "Failed"


class ConversationQuerySet(models.QuerySet):
    def owned_by(self, user) -> ConversationQuerySet:
        """Conversations ``user`` owns: what history pages may show."""
        return self.filter(owner=user)

    def visible_to(self, user) -> ConversationQuerySet:
        """Conversations ``user`` may see in the admin: all for superusers, else their own."""
        return self if user.is_superuser else self.owned_by(user)


class Conversation(models.Model):
    """One voice session (or several, when resumed) between a user and the assistant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(
        max_length=120, blank=True, help_text="Taken from the first thing the user said."
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)
    client_kind = models.CharField(max_length=16, choices=ClientKind.choices, default=ClientKind.BROWSER)
    engines = models.JSONField(default=dict, blank=True, help_text='Engines used, e.g. {"asr": "tiny.en"}.')
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="The session settings in effect (system prompt, silence, barge-in, turn detection, "
        "language, voice): the server's at the start, then each change the client made with configure; "
        "'chosen' names the client's, which a resumed session keeps.",
    )
    live_sessions = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="The WebSocket sessions attached now (their keys): the last one to close ends the "
        "conversation.",
    )

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["owner", "-started_at"], name="conv_owner_started_idx")]

    def __str__(self) -> str:
        return self.title or f"Conversation {timezone.localtime(self.started_at):%Y-%m-%d %H:%M}"

    def get_absolute_url(self) -> str:
        return reverse("history-detail", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class Turn(models.Model):
    """One user utterance (or typed message) and the assistant's reply to it."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField(help_text="Order within the conversation, from 0.")
    turn_id = models.UUIDField(unique=True, help_text="The transcript id sent to the client.")
    source = models.CharField(max_length=8, choices=TurnSource.choices, default=TurnSource.VOICE)
    user_text = models.TextField()
    assistant_text = models.TextField(
        blank=True, help_text="The committed reply: for an interrupted turn, what the user heard."
    )
    assistant_text_generated = models.TextField(
        blank=True, help_text="The full reply generated before an interruption."
    )
    playback_reported = models.BooleanField(
        default=False, help_text="The client reported how much of the reply it played."
    )
    status = models.CharField(
        "turn status", max_length=16, choices=TurnStatus.choices, default=TurnStatus.PENDING
    )
    audio_duration_s = models.FloatField("audio duration (s)", null=True, blank=True)
    session_key = models.UUIDField(
        null=True,
        blank=True,
        editable=False,
        help_text="The session that recorded the turn: if its process dies mid-reply, the replay of "
        "its journal ends the reply.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "index"]
        constraints = [models.UniqueConstraint(fields=["conversation", "index"], name="turn_unique_index")]
        indexes = [models.Index(fields=["created_at"], name="turn_created_idx")]

    def __str__(self) -> str:
        return f"Turn {self.index + 1}: {self.user_text[:60]}"


class TurnMetrics(models.Model):
    """Latency of one turn: a column per figure of :data:`METRIC_COLUMNS`, instants as wall-clock times.

    What each figure means is said once, in :data:`streaming.metrics.METRIC_FIELDS`.
    """

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="metrics")
    t0 = models.DateTimeField(null=True, blank=True, verbose_name="t0 audio start")
    t1 = models.DateTimeField(null=True, blank=True, verbose_name="t1 first partial")
    t2 = models.DateTimeField(null=True, blank=True, verbose_name="t2 final transcript")
    t3 = models.DateTimeField(null=True, blank=True, verbose_name="t3 first LLM token")
    t4 = models.DateTimeField(null=True, blank=True, verbose_name="t4 first TTS audio")
    speech_end = models.DateTimeField(null=True, blank=True)
    endpointing_ms = models.FloatField(null=True, blank=True)
    asr_ms = models.FloatField(null=True, blank=True)
    llm_first_token_ms = models.FloatField(null=True, blank=True)
    tts_first_audio_ms = models.FloatField(null=True, blank=True)
    voice_to_voice_ms = models.FloatField(null=True, blank=True)
    asr_rtf = models.FloatField(null=True, blank=True, verbose_name="ASR real-time factor")
    partials = models.PositiveIntegerField(default=0, help_text="Partial transcripts sent.")
    end_rule = models.CharField(
        max_length=16, blank=True, default="", help_text="Why the utterance ended (see docs/protocol.md)."
    )
    end_pause_ms = models.FloatField(null=True, blank=True, help_text="The pause that ended it.")
    end_score = models.FloatField(null=True, blank=True, help_text="The end-of-turn detector's score.")
    reply_speculative = models.BooleanField(
        default=False, help_text="The reply's LLM request began on the speculative final, during the pause."
    )

    class Meta:
        verbose_name_plural = "turn metrics"

    def __str__(self) -> str:
        return f"Metrics of {self.turn}"


# The reported figures stored as TurnMetrics columns of the same name: all but the speech
# duration, a column of Turn (it comes with the final transcript), and where the final came
# from, which is only logged and sent to the client.
METRIC_COLUMNS = tuple(f for f in METRIC_FIELDS if f.name not in {"audio_duration_s", "final_source"})


class ErrorEvent(models.Model):
    """An error reported to the client during a conversation."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="errors")
    turn = models.ForeignKey(Turn, on_delete=models.SET_NULL, null=True, blank=True, related_name="errors")
    code = models.CharField(max_length=64)
    message = models.TextField()
    recoverable = models.BooleanField()
    created_at = models.DateTimeField(default=timezone.now)
    event_id = models.UUIDField(
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="Given by the recorder, so an error written again from the journal is stored once.",
    )

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.code}: {self.message[:60]}"


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        """Tokens that authenticate now: not revoked, not expired, and their user still active."""
        not_expired = models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        return self.filter(not_expired, revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A bearer token for programmatic WebSocket clients; only its SHA-256 hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=12, help_text="The token's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the token never expires.")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="token_user_created_idx")]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        """Neither revoked nor expired (whether its user may still log in is the user's matter)."""
        return self.revoked_at is None and not self.is_expired
