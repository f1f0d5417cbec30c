"""History pages: list, search, pagination, detail with chart data, delete, export, per-user isolation."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Turn, TurnMetrics
from tests.support.browser import CHROMIUM, NEEDS_CHROMIUM

pytestmark = pytest.mark.django_db


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


def add_turn(conversation: Conversation, user_text: str, source: str = "voice", **metrics) -> None:
    """A completed turn spoken (``source="voice"``) or typed (``"text"``), with ``metrics`` if given."""
    turn_id = str(uuid.uuid4())
    services.record_turn(conversation.pk, turn_id=turn_id, user_text=user_text, source=source)
    services.finish_turn(turn_id, status="completed", assistant_text=f"reply to {user_text}")
    if metrics:
        services.record_metrics(turn_id, metrics)


def visible_text(html: str) -> str:
    """``html`` without tags and with whitespace runs collapsed: what a reader sees."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def stat(page: str, name: str) -> tuple[str, str]:
    """The (label, value) of the stats card whose label starts with ``name``."""
    match = re.search(rf"<dt>({re.escape(name)}.*?)</dt><dd>(.*?)</dd>", page)
    assert match, f"no {name!r} card"
    return visible_text(match[1]), visible_text(match[2])


def chart_data(page: str) -> list[dict]:
    return json.loads(
        page.split('<script id="latency-data" type="application/json">')[1].split("</script>")[0]
    )


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
    # PostgreSQL text cannot hold NUL: a query with one is searched without it, not a 500.
    assert found("wea\x00ther") == {weather.pk}


def test_times_are_shown_in_the_sites_time_zone_and_say_which(client, alice, settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    conversation = make_conversation(alice, [("hello", "hi", "completed")])
    started = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    Conversation.objects.filter(pk=conversation.pk).update(started_at=started, title="")
    conversation.refresh_from_db()
    client.force_login(alice)
    assert "Sun 1 Mar 2026" not in client.get(reverse("history")).content.decode()
    assert "Mon 2 Mar 2026, 00:30 CET" in client.get(reverse("history")).content.decode()
    assert "2 March 2026, 00:30 CET" in client.get(conversation.get_absolute_url()).content.decode()
    # An untitled conversation is named after its start as the pages show it (the admin, messages).
    assert str(conversation) == "Conversation 2026-03-02 00:30"


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
    chart = chart_data(page)
    assert chart == [
        {
            "label": f"Turn {n}",
            "status": status,
            "typed": False,
            "endpointing": 1000.4,
            "llm": 450.0,
            "tts": 200.0,
            "asr": 300.4,
            "voice_to_voice": 1650.4,
        }
        for n, status in ((1, "completed"), (2, "interrupted"))
    ]
    for bar in chart:  # the stacked segments are the stages, and add up to voice to voice
        assert bar["endpointing"] + bar["llm"] + bar["tts"] == pytest.approx(bar["voice_to_voice"])
    shown = visible_text(page)
    assert "voice to voice 1650 ms endpointing 1000 (ASR 300) · LLM 450 · TTS 200 ms" in shown
    assert stat(page, "Median voice to voice") == ("Median voice to voice", "1650 ms")
    assert "/static/js/latency-chart.js" in page
    script = client.get("/static/js/latency-chart.js")
    assert script.status_code == 200


def test_detail_median_counts_spoken_turns_only(client, alice) -> None:
    """A typed turn's "voice to voice" is message to first audio: shown as such, never in the median."""
    conversation = services.start_conversation(alice, client_kind="browser", engines={})
    for n, total in enumerate((1200.0, 1400.0, 1500.0)):
        add_turn(
            conversation,
            f"spoken {n}",
            endpointing_ms=total - 500,
            asr_ms=250.0,
            llm_first_token_ms=300.0,
            tts_first_audio_ms=200.0,
            voice_to_voice_ms=total,
        )
    for n, total in enumerate((400.0, 500.0, 600.0, 700.0)):
        add_turn(
            conversation,
            f"typed {n}",
            "text",
            endpointing_ms=1.2,
            llm_first_token_ms=total - 201.2,
            tts_first_audio_ms=200.0,
            voice_to_voice_ms=total,
        )
    client.force_login(alice)
    response = client.get(reverse("history-detail", args=[conversation.pk]))
    page = response.content.decode()
    assert stat(page, "Median voice to voice") == ("Median voice to voice, spoken turns only", "1400 ms")
    assert "4 typed messages not counted" in page
    shown = visible_text(page)
    assert "Turn 1 voice to voice 1200 ms endpointing 700 (ASR 250) · LLM 300 · TTS 200 ms" in shown
    assert "Turn 4 message to first audio 400 ms queued 1 · LLM 199 · TTS 200 ms" in shown
    assert "voice to voice 400" not in shown and "endpointing 1 " not in shown
    typed_bars = [bar for bar in chart_data(page) if bar["typed"]]
    assert [bar["label"] for bar in typed_bars] == ["Turn 4", "Turn 5", "Turn 6", "Turn 7"]
    assert typed_bars[0]["asr"] is None and typed_bars[0]["voice_to_voice"] == 400.0


def test_detail_of_typed_turns_only_has_no_median(client, alice) -> None:
    conversation = services.start_conversation(alice, client_kind="browser", engines={})
    add_turn(conversation, "typed", "text", endpointing_ms=0.9, voice_to_voice_ms=450.0)
    client.force_login(alice)
    page = client.get(reverse("history-detail", args=[conversation.pk])).content.decode()
    assert stat(page, "Median voice to voice") == ("Median voice to voice, spoken turns only", "—")


@pytest.mark.e2e
@NEEDS_CHROMIUM
@pytest.mark.django_db(transaction=True)
def test_latency_chart_draws_what_its_labels_say_in_chromium(client, alice, live_server) -> None:
    """Each drawn segment is as long as the figure its label names, the one the transcript shows."""
    from playwright.sync_api import sync_playwright

    conversation = services.start_conversation(alice, client_kind="browser", engines={})
    add_turn(
        conversation,
        "spoken",
        endpointing_ms=1000.0,
        asr_ms=300.0,
        llm_first_token_ms=450.0,
        tts_first_audio_ms=250.0,
        voice_to_voice_ms=1700.0,
    )
    add_turn(
        conversation,
        "typed",
        "text",
        endpointing_ms=2.0,
        llm_first_token_ms=400.0,
        tts_first_audio_ms=98.0,
        voice_to_voice_ms=500.0,
    )
    client.force_login(alice)
    session = client.cookies["sessionid"].value
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
            page = context.new_page()
            page.goto(f"{live_server.url}{reverse('history-detail', args=[conversation.pk])}")
            page.wait_for_selector("svg.latency-svg")
            legend = page.locator(".legend li").all_text_contents()
            rows = page.eval_on_selector_all(
                "svg.latency-svg g.chart-row",
                """rows => rows.map(row => [...row.querySelectorAll("rect")].map(rect => ({
                    x: rect.x.baseVal.value, width: rect.width.baseVal.value,
                    height: rect.height.baseVal.value, title: rect.querySelector("title").textContent,
                })))""",
            )
            transcript = page.locator(".transcript").inner_text()
        finally:
            browser.close()

    def figure(rect: dict) -> tuple[str, float]:
        name, value = rect["title"].split(" · ", 1)[1].rsplit(": ", 1)
        return name, float(value.removesuffix(" ms"))

    spoken, typed = rows
    stacked = [rect for rect in spoken if rect["height"] == max(r["height"] for r in spoken)]
    scale = sum(rect["width"] for rect in stacked) / 1700.0  # px per ms: the bar is voice to voice
    figures = dict(figure(rect) for rect in spoken)
    assert figures == {
        "Endpointing": 1000.0,
        "ASR, within endpointing": 300.0,
        "LLM first token": 450.0,
        "TTS first audio": 250.0,
    }
    assert set(figures) == set(legend), "every segment is named as in the legend"
    for rect in spoken:
        assert rect["width"] == pytest.approx(figure(rect)[1] * scale, rel=0.01), rect["title"]
    (endpointing,) = (rect for rect in spoken if rect["title"].endswith("Endpointing: 1000 ms"))
    (asr,) = (rect for rect in spoken if "ASR" in rect["title"])
    assert endpointing["x"] <= asr["x"] and asr["x"] + asr["width"] <= endpointing["x"] + endpointing["width"]
    assert "endpointing 1000 (ASR 300)" in transcript, "the transcript gives the figure the chart draws"
    assert [figure(rect) for rect in typed] == [
        ("Queued", 2.0),
        ("LLM first token", 400.0),
        ("TTS first audio", 98.0),
    ]
    assert typed[0]["title"].startswith("Turn 2 (typed)")


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


def test_detail_says_why_each_spoken_turn_ended(client, alice) -> None:
    conversation = Conversation.objects.create(owner=alice)
    add_turn(
        conversation,
        "what time is it",
        voice_to_voice_ms=380.0,
        end_rule="complete",
        end_pause_ms=310,
        end_score=0.974,
        reply_speculative=True,
    )
    add_turn(
        conversation,
        "I went to the shop and",
        voice_to_voice_ms=1300.0,
        end_rule="unfinished",
        end_pause_ms=1200,
    )
    add_turn(conversation, "a long monologue", voice_to_voice_ms=900.0, end_rule="max_length")
    add_turn(conversation, "typed", "text", voice_to_voice_ms=20.0, end_rule="")
    client.force_login(alice)
    shown = visible_text(client.get(reverse("history-detail", args=[conversation.pk])).content.decode())
    assert "Judged complete after a 310 ms pause (score 0.97); reply begun during the pause" in shown
    assert "Judged unfinished: ended only after a 1200 ms pause" in shown
    assert "Reached the longest utterance" in shown
    assert shown.count("pause") == 3  # the typed turn says nothing about pauses
