"""Admin: conversations with turns, filters and search, read-only records, latency summary, visibility."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from conversations import services
from conversations.latency import percentile
from conversations.models import ApiToken, Conversation, ErrorEvent, Turn, TurnMetrics
from conversations.tokens import create_token

pytestmark = pytest.mark.django_db

LATENCY_URL = "admin:conversations_conversation_latency"


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")


@pytest.fixture
def staff(django_user_model):
    """Staff, not superuser, allowed to view every conversations model."""
    user = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="conversations", codename__startswith="view_")
    )
    return user


def filter_paths(response) -> list[str]:
    return [getattr(spec, "field_path", "") for spec in response.context["cl"].filter_specs]


def add_turn(conversation, user_text, *, status="completed", source="voice", when=None, **metrics) -> Turn:
    turn_id = str(uuid.uuid4())
    services.record_turn(conversation.pk, turn_id=turn_id, user_text=user_text, source=source)
    services.finish_turn(turn_id, status=status, assistant_text=f"reply to {user_text}")
    if metrics:
        services.record_metrics(turn_id, metrics)
    if when is not None:
        Turn.objects.filter(turn_id=turn_id).update(created_at=when)
    return Turn.objects.get(turn_id=turn_id)


@pytest.fixture
def bobs(bob):
    conversation = services.start_conversation(bob, client_kind="api", engines={})
    add_turn(conversation, "bob secret words", voice_to_voice_ms=99999, endpointing_ms=99999)
    services.record_error(conversation.pk, code="BOB_ERROR", message="bob's failure", recoverable=True)
    create_token(bob, "bob token")
    return conversation


@pytest.fixture
def staffs(staff):
    conversation = services.start_conversation(staff, client_kind="browser", engines={"asr": "tiny.en"})
    add_turn(conversation, "staff question", voice_to_voice_ms=1200, endpointing_ms=500)
    services.record_error(conversation.pk, code="STAFF_ERROR", message="staff failure", recoverable=False)
    create_token(staff, "staff token")
    return conversation


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([42.0], 95) == 42.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    hundred = [float(v) for v in range(1, 101)]
    assert percentile(hundred, 50) == pytest.approx(50.5)
    assert percentile(hundred, 95) == pytest.approx(95.05)
    assert percentile([100.0, 200.0], 0) == 100.0 and percentile([100.0, 200.0], 100) == 200.0


def test_superuser_changelist_search_and_filters(client, root, bobs, staffs) -> None:
    client.force_login(root)
    url = reverse("admin:conversations_conversation_changelist")
    response = client.get(url)
    assert response.status_code == 200
    assert set(response.context["cl"].queryset) == {bobs, staffs}
    page = response.content.decode()
    assert reverse(LATENCY_URL) in page, "the changelist links the latency summary"
    assert "owner" in filter_paths(response)

    by_text = client.get(url, {"q": "secret words"})
    assert list(by_text.context["cl"].queryset) == [bobs]
    by_user = client.get(url, {"q": "staff"})
    assert list(by_user.context["cl"].queryset) == [staffs]
    by_kind = client.get(url, {"client_kind__exact": "api"})
    assert list(by_kind.context["cl"].queryset) == [bobs]
    add_turn(staffs, "cut short", status="interrupted")
    by_status = client.get(url, {"turns__status__exact": "interrupted"})
    assert list(by_status.context["cl"].queryset) == [staffs]
    Conversation.objects.filter(pk=bobs.pk).update(started_at=timezone.now() - timedelta(days=3))
    (date_filter,) = [spec for spec in response.context["cl"].filter_specs if spec.field_path == "started_at"]
    today_link = next(
        c["query_string"] for c in date_filter.choices(response.context["cl"]) if c["display"] == "Today"
    )
    by_date = client.get(url + today_link)
    assert list(by_date.context["cl"].queryset) == [staffs]


def test_change_page_shows_turns_inline_with_latency(client, root, staffs) -> None:
    client.force_login(root)
    response = client.get(reverse("admin:conversations_conversation_change", args=[staffs.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "staff question" in page and "reply to staff question" in page
    assert "voice to voice 1200" in page
    assert 'name="turns-0-user_text"' not in page, "turns are read-only"
    assert 'name="title"' in page


def inline_column(page: str, field: str) -> list[str]:
    """The text of each turn's ``field`` cell in the change page's turns table."""
    cells = re.findall(rf'<td class="field-{field}">(.*?)</td>', page, re.DOTALL)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]


def test_change_page_numbers_turns_from_1_and_names_typed_figures(client, root, staffs) -> None:
    """Turn numbers match the history pages ("Turn 1" is index 0); a typed turn has no voice to voice."""
    add_turn(
        staffs,
        "typed question",
        source="text",
        endpointing_ms=1.4,
        llm_first_token_ms=300.0,
        tts_first_audio_ms=198.6,
        voice_to_voice_ms=500.0,
    )
    add_turn(staffs, "spoken again", endpointing_ms=800.0, asr_ms=240.0, voice_to_voice_ms=1400.0)
    assert list(Turn.objects.filter(conversation=staffs).values_list("index", flat=True)) == [0, 1, 2]
    client.force_login(root)
    page = client.get(reverse("admin:conversations_conversation_change", args=[staffs.pk])).content.decode()
    assert inline_column(page, "number") == ["1", "2", "3"]
    assert 'class="field-index"' not in page
    assert "Turn 1: staff question" in page, "the row titles already counted from 1"
    assert inline_column(page, "latency") == [
        "endpointing 500 · voice to voice 1200",
        "queued 1 · LLM 300 · TTS 199 · message to first audio 500",
        "endpointing 800 (ASR 240) · voice to voice 1400",
    ]


def test_turn_metrics_error_and_token_admins_are_read_only(client, root, staffs) -> None:
    client.force_login(root)
    metrics = TurnMetrics.objects.get(turn__conversation=staffs)
    page = client.get(reverse("admin:conversations_turnmetrics_change", args=[metrics.pk])).content.decode()
    assert "1200" in page and 'name="voice_to_voice_ms"' not in page
    error = ErrorEvent.objects.get(conversation=staffs)
    page = client.get(reverse("admin:conversations_errorevent_change", args=[error.pk])).content.decode()
    assert "STAFF_ERROR" in page and 'name="code"' not in page
    assert client.get(reverse("admin:conversations_errorevent_add")).status_code == 403
    token = ApiToken.objects.get(user__username="staff")
    page = client.get(reverse("admin:conversations_apitoken_change", args=[token.pk])).content.decode()
    assert token.key_hash not in page and 'name="name"' in page
    assert client.get(reverse("admin:conversations_apitoken_add")).status_code == 403


def test_token_admin_revoke_action(client, root, staffs) -> None:
    client.force_login(root)
    token = ApiToken.objects.get(user__username="staff")
    client.post(
        reverse("admin:conversations_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_non_superuser_staff_sees_only_their_own(client, staff, staffs, bobs) -> None:
    client.force_login(staff)
    changelist = client.get(reverse("admin:conversations_conversation_changelist"))
    assert list(changelist.context["cl"].queryset) == [staffs]
    assert "bob secret words" not in changelist.content.decode()
    assert "owner" not in filter_paths(changelist), "the owner filter would list every username"
    assert "turns__status" in filter_paths(changelist)
    searched = client.get(reverse("admin:conversations_conversation_changelist"), {"q": "bob"})
    assert list(searched.context["cl"].queryset) == []

    change = client.get(reverse("admin:conversations_conversation_change", args=[bobs.pk]))
    assert change.status_code == 302 and change.url == reverse("admin:index")
    assert "bob secret words" not in client.get(change.url).content.decode()
    own = client.get(reverse("admin:conversations_conversation_change", args=[staffs.pk]))
    assert own.status_code == 200 and "staff question" in own.content.decode()

    for model, hidden in (
        ("turnmetrics", "bob secret words"),
        ("errorevent", "BOB_ERROR"),
        ("apitoken", "bob token"),
    ):
        page = client.get(reverse(f"admin:conversations_{model}_changelist"))
        assert page.status_code == 200 and hidden not in page.content.decode()
        assert page.context["cl"].result_count == 1
    bobs_error = ErrorEvent.objects.get(conversation=bobs)
    assert (
        client.get(reverse("admin:conversations_errorevent_change", args=[bobs_error.pk])).status_code == 302
    )


def test_staff_cannot_delete_or_revoke_others(client, staff, bobs) -> None:
    client.force_login(staff)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["delete_conversation", "change_apitoken"])
    )
    client.post(
        reverse("admin:conversations_conversation_changelist"),
        {"action": "delete_selected", "_selected_action": [bobs.pk], "post": "yes"},
    )
    assert Conversation.objects.filter(pk=bobs.pk).exists()
    token = ApiToken.objects.get(user__username="bob")
    client.post(
        reverse("admin:conversations_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None


def test_admin_requires_staff(client, bob) -> None:
    client.force_login(bob)
    for url in (reverse("admin:conversations_conversation_changelist"), reverse(LATENCY_URL)):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response.url


def test_latency_summary_per_day_percentiles(client, root, bob) -> None:
    conversation = services.start_conversation(bob, client_kind="browser", engines={})
    today = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    for n in range(1, 11):  # today: 100..1000 ms voice-to-voice, endpointing 10x smaller
        add_turn(
            conversation,
            f"today {n}",
            when=today,
            voice_to_voice_ms=100.0 * n,
            endpointing_ms=10.0 * n,
            llm_first_token_ms=None,
            tts_first_audio_ms=50.0,
        )
    add_turn(conversation, "yesterday", when=yesterday, voice_to_voice_ms=2000.0, llm_first_token_ms=300.0)
    add_turn(conversation, "unmeasured", when=today)
    add_turn(conversation, "long ago", when=today - timedelta(days=40), voice_to_voice_ms=5.0)

    client.force_login(root)
    response = client.get(reverse(LATENCY_URL))
    assert response.status_code == 200
    assert response.context["stages"] == [
        "Endpointing",
        "LLM first token",
        "TTS first audio",
        "Voice to voice",
    ]
    days = response.context["summaries"]
    assert [(d.day, d.count) for d in days] == [(today.date(), 10), (yesterday.date(), 1)]
    endpointing, llm, tts, v2v = days[0].stages
    assert (v2v.samples, v2v.p50, v2v.p95) == (10, pytest.approx(550.0), pytest.approx(955.0))
    assert (endpointing.p50, endpointing.p95) == (pytest.approx(55.0), pytest.approx(95.5))
    assert (llm.samples, llm.p50, llm.p95) == (0, None, None)
    assert (tts.p50, tts.p95) == (50.0, 50.0)
    assert days[1].stages[1].p50 == 300.0 and days[1].stages[3].p95 == 2000.0
    page = response.content.decode()
    assert "550" in page and "955" in page and "Latency summary" in page

    longer = client.get(reverse(LATENCY_URL), {"days": "90"})
    assert [d.count for d in longer.context["summaries"]] == [10, 1, 1]
    assert client.get(reverse(LATENCY_URL), {"days": "junk"}).context["days"] == 30


def summary_rows(page: str) -> list[list[str]]:
    """The cells of each day's row in the rendered latency summary table."""
    rows = re.findall(r'<tr>\s*(<th scope="row">.*?)</tr>', page, re.DOTALL)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in rows]


def test_latency_summary_leaves_typed_turns_out_of_the_figures(client, root, bob) -> None:
    """Typed turns have no speech end: their ~1 ms "endpointing" once made the day's p50 0 ms."""
    conversation = services.start_conversation(bob, client_kind="browser", engines={})
    today = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    for n in range(1, 5):  # spoken: endpointing 500..800, voice to voice 1000..1300
        add_turn(
            conversation,
            f"spoken {n}",
            when=today,
            endpointing_ms=400.0 + 100 * n,
            asr_ms=200.0,
            llm_first_token_ms=300.0,
            tts_first_audio_ms=200.0,
            voice_to_voice_ms=900.0 + 100 * n,
        )
    for n in range(1, 6):  # typed: message to first audio 400..480
        add_turn(
            conversation,
            f"typed {n}",
            source="text",
            when=today,
            endpointing_ms=0.4,
            llm_first_token_ms=180.0 + 20 * n,
            tts_first_audio_ms=200.0,
            voice_to_voice_ms=380.0 + 20 * n,
        )
    client.force_login(root)
    response = client.get(reverse(LATENCY_URL))
    (day,) = response.context["summaries"]
    endpointing, llm, tts, v2v = day.stages
    assert (endpointing.samples, endpointing.p50, endpointing.p95) == (4, 650.0, pytest.approx(785.0))
    assert (llm.p50, tts.p50) == (300.0, 200.0)
    assert (v2v.p50, v2v.p95) == (1150.0, pytest.approx(1285.0))
    assert (day.count, day.typed) == (4, 5)
    page = response.content.decode()
    assert summary_rows(page) == [
        [today.strftime("%a %-d %b %Y"), "4", "5", "650", "785", "300", "300", "200", "200", "1150", "1285"]
    ]
    assert "Typed messages are counted but left out of the figures" in page


def test_turn_metrics_list_shows_and_filters_the_source(client, root, staffs) -> None:
    add_turn(staffs, "typed question", source="text", endpointing_ms=1.0, voice_to_voice_ms=450.0)
    client.force_login(root)
    url = reverse("admin:conversations_turnmetrics_changelist")
    page = client.get(url).content.decode()
    assert sorted(re.findall(r'<td class="field-source">(\w+)</td>', page)) == ["Text", "Voice"]
    typed = client.get(url, {"turn__source__exact": "text"})
    assert [m.turn.user_text for m in typed.context["cl"].queryset] == ["typed question"]


def test_latency_summary_respects_visibility(client, staff, staffs, bobs) -> None:
    client.force_login(staff)
    response = client.get(reverse(LATENCY_URL))
    assert response.status_code == 200
    (day,) = response.context["summaries"]
    assert day.count == 1 and day.stages[3].p50 == 1200.0, "bob's 99999 ms turn is not counted"


def test_latency_summary_needs_view_permission(client, django_user_model) -> None:
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse(LATENCY_URL)).status_code == 403


def test_latency_day_follows_the_time_zone(client, root, bob, settings) -> None:
    """03:30 UTC is still the previous evening in New York, so the turn counts for that day."""
    settings.TIME_ZONE = "America/New_York"
    conversation = services.start_conversation(bob, client_kind="browser", engines={})
    utc_day = timezone.now().astimezone(UTC).date() - timedelta(days=2)
    early_utc = datetime.combine(utc_day, time(3, 30), tzinfo=UTC)
    add_turn(conversation, "late", when=early_utc, voice_to_voice_ms=800.0)
    client.force_login(root)
    response = client.get(reverse(LATENCY_URL))
    assert [d.day for d in response.context["summaries"]] == [utc_day - timedelta(days=1)]
