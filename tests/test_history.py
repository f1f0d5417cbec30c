"""History pages: list, search, pagination, detail with chart data, delete, export, per-user isolation."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Turn, TurnMetrics

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


def make_conversation(user, exchanges: list[tuple[str, str, str]], **metrics) -> Conversation:
    """A conversation with (user text, assistant text, status) turns, stored through the services."""
    conversation = services.start_conversation(user, client_kind="browser", engines={"asr": "tiny.en"})
    for user_text, assistant_text, status in exchanges:
        turn_id = str(uuid.uuid4())
        services.record_turn(conversation.pk, turn_id=turn_id, user_text=user_text, audio_duration_s=1.5)
        services.finish_turn(turn_id, status=status, assistant_text=assistant_text)
        if metrics:
            services.record_metrics(turn_id, metrics)
    return conversation


@pytest.fixture
def bobs(bob) -> Conversation:
    return make_conversation(bob, [("bob's private plans", "noted, bob", "completed")])


def test_list_shows_own_conversations_newest_first(client, alice, bobs) -> None:
    old = make_conversation(alice, [("old question", "old answer", "completed")])
    Conversation.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=2))
    new = make_conversation(alice, [("new question", "new answer", "completed")])
    client.force_login(alice)
    response = client.get(reverse("history"))
    assert [c.pk for c in response.context["page"].object_list] == [new.pk, old.pk]
    page = response.content.decode()
    assert "new question" in page and "private plans" not in page
    assert response.context["page"].object_list[0].turn_count == 1


def test_list_paginates_by_20(client, alice) -> None:
    now = timezone.now()
    for i in range(25):
        conversation = Conversation.objects.create(
            owner=alice, title=f"chat {i}", started_at=now - timedelta(minutes=i)
        )
        services.record_turn(conversation.pk, turn_id=str(uuid.uuid4()), user_text=f"question {i}")
    client.force_login(alice)
    first = client.get(reverse("history"))
    assert [c.title for c in first.context["page"].object_list] == [f"chat {i}" for i in range(20)]
    second = client.get(reverse("history"), {"page": 2})
    assert [c.title for c in second.context["page"].object_list] == [f"chat {i}" for i in range(20, 25)]
    assert 'rel="next"' in first.content.decode() and 'rel="prev"' in second.content.decode()


def test_list_leaves_out_sessions_where_nothing_was_said(client, alice) -> None:
    services.start_conversation(alice, client_kind="browser", engines={})
    spoken = make_conversation(alice, [("hello", "hi", "completed")])
    client.force_login(alice)
    response = client.get(reverse("history"))
    assert [c.pk for c in response.context["page"].object_list] == [spoken.pk]


def test_search_matches_title_and_turn_text_of_own_conversations(client, alice, bobs) -> None:
    weather = make_conversation(alice, [("What is the weather?", "Sunny with a breeze.", "completed")])
    recipe = make_conversation(alice, [("A pancake recipe", "Flour, eggs, milk.", "completed")])
    make_conversation(alice, [("Anything else", "No.", "completed"), ("eggs again", "yes", "completed")])
    client.force_login(alice)

    def found(query: str) -> set:
        response = client.get(reverse("history"), {"q": query})
        return {c.pk for c in response.context["page"].object_list}

    assert found("weather") == {weather.pk}
    assert found("BREEZE") == {weather.pk}, "assistant text, case-insensitive"
    assert found("pancake") == {recipe.pk}
    assert len(found("eggs")) == 2, "one row per conversation even with several matching turns"
    assert found("private plans") == set(), "another user's text never matches"
    empty = client.get(reverse("history"), {"q": "zebra"})
    assert "No matches" in empty.content.decode()


def test_detail_shows_turns_status_and_chart_data(client, alice) -> None:
    conversation = make_conversation(
        alice,
        [("hello", "Hi there!", "completed"), ("tell me a story", "Once upon", "interrupted")],
        endpointing_ms=1000.4,  # speech end → final, the final's 300.4 ms of decoding included
        asr_ms=300.4,
        llm_first_token_ms=450,
        tts_first_audio_ms=200,
        voice_to_voice_ms=1650.4,
    )
    client.force_login(alice)
    response = client.get(reverse("history-detail", args=[conversation.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("hello", "Hi there!", "tell me a story", "Once upon", "Completed", "Interrupted"):
        assert text in page
    chart = json.loads(
        page.split('<script id="latency-data" type="application/json">')[1].split("</script>")[0]
    )
    assert chart == [
        {
            "label": f"Turn {n}",
            "status": status,
            "endpointing": 700.0,
            "asr": 300.4,
            "llm": 450.0,
            "tts": 200.0,
            "voice_to_voice": 1650.4,
        }
        for n, status in ((1, "completed"), (2, "interrupted"))
    ]
    assert "/static/js/latency-chart.js" in page
    assert response.context["v2v_median"] == pytest.approx(1650.4)
    script = client.get("/static/js/latency-chart.js")
    assert script.status_code == 200


def test_detail_without_metrics_has_no_chart(client, alice) -> None:
    conversation = make_conversation(alice, [("typed hello", "hi", "completed")])
    client.force_login(alice)
    response = client.get(reverse("history-detail", args=[conversation.pk]))
    assert response.context["chart"] == [] and "latency-chart.js" not in response.content.decode()


def test_delete_asks_then_removes_everything(client, alice) -> None:
    conversation = make_conversation(alice, [("hello", "hi", "completed")], voice_to_voice_ms=900)
    client.force_login(alice)
    confirm = client.get(reverse("history-delete", args=[conversation.pk]))
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    response = client.post(reverse("history-delete", args=[conversation.pk]))
    assert response.status_code == 302 and response.url == reverse("history")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Turn.objects.exists() and not TurnMetrics.objects.exists()


def test_export_is_a_json_download(client, alice) -> None:
    conversation = make_conversation(alice, [("hello", "hi", "completed")], t0=1_760_000_000.0, asr_ms=250)
    services.record_error(conversation.pk, code="TTS_FAILED", message="espeak crashed", recoverable=True)
    client.force_login(alice)
    response = client.get(reverse("history-export", args=[conversation.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{conversation.pk}.json"'
    data = response.json()
    assert data["id"] == str(conversation.pk) and data["owner"] == "alice"
    assert [(t["user_text"], t["assistant_text"], t["status"]) for t in data["turns"]] == [
        ("hello", "hi", "completed")
    ]
    assert data["turns"][0]["metrics"]["asr_ms"] == 250.0
    assert data["turns"][0]["metrics"]["t0"] == "2025-10-09T08:53:20+00:00"
    assert data["errors"][0]["code"] == "TTS_FAILED"


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("history-detail", "get"),
        ("history-delete", "get"),
        ("history-delete", "post"),
        ("history-export", "get"),
    ],
)
def test_another_users_conversation_is_404(client, alice, bobs, name, method) -> None:
    client.force_login(alice)
    response = getattr(client, method)(reverse(name, args=[bobs.pk]))
    assert response.status_code == 404
    assert "private plans" not in response.content.decode()
    assert Conversation.objects.filter(pk=bobs.pk).exists()


def test_unknown_conversation_is_404(client, alice) -> None:
    client.force_login(alice)
    assert client.get(reverse("history-detail", args=[uuid.uuid4()])).status_code == 404


def test_chat_resume_loads_own_transcript_and_404s_for_others(client, alice, bobs) -> None:
    own = make_conversation(alice, [("hello", "hi", "completed")])
    client.force_login(alice)
    response = client.get(reverse("chat"), {"c": str(own.pk)})
    assert response.context["conversation_id"] == str(own.pk)
    assert [t["user_text"] for t in response.context["transcript"]] == ["hello"]
    assert f'data-conversation-id="{own.pk}"' in response.content.decode()
    assert client.get(reverse("chat"), {"c": str(bobs.pk)}).status_code == 404
    assert client.get(reverse("chat"), {"c": "not-a-uuid"}).status_code == 404
