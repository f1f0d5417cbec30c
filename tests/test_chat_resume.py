"""What the chat page reads when it resumes: turns.json for the turns it lost track of, and ``?c=``.

The browser side (reconnects, reloads mid-reply) is tested in a real Chromium in test_browser_e2e.py.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from conversations.models import Conversation, Turn, TurnMetrics

pytestmark = pytest.mark.django_db


def conversation_with_turns(owner, count: int) -> tuple[Conversation, list[Turn]]:
    """A conversation of ``count`` turns; the last one still pending, as while a reply is in flight."""
    conversation = Conversation.objects.create(owner=owner)
    turns = [
        Turn.objects.create(
            conversation=conversation,
            index=index,
            turn_id=uuid.uuid4(),
            source="text" if index % 2 else "voice",
            user_text=f"question {index}",
            assistant_text="" if index == count - 1 else f"answer {index}",
            status="pending" if index == count - 1 else "completed",
        )
        for index in range(count)
    ]
    return conversation, turns


def test_turns_json_lists_the_latest_turns_oldest_first(client, alice) -> None:
    conversation, turns = conversation_with_turns(alice, 5)
    client.force_login(alice)
    response = client.get(reverse("history-turns", args=[conversation.pk]), {"last": "3"})
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]  # a recheck must see the session's latest write
    body = response.json()
    assert body["conversation_id"] == str(conversation.pk)
    assert body["turns"] == [
        {
            "turn_id": str(turn.turn_id),
            "source": turn.source,
            "status": turn.status,
            "user_text": turn.user_text,
            "assistant_text": turn.assistant_text,
        }
        for turn in turns[2:]
    ]
    assert body["turns"][-1]["status"] == "pending"


@pytest.mark.parametrize(("last", "expected"), [(None, 20), ("0", 1), ("-4", 1), ("500", 100), ("many", 20)])
def test_turns_json_bounds_how_many_turns_it_returns(client, alice, last, expected) -> None:
    conversation, _ = conversation_with_turns(alice, 120)
    client.force_login(alice)
    query = {} if last is None else {"last": last}
    turns = client.get(reverse("history-turns", args=[conversation.pk]), query).json()["turns"]
    assert [turn["user_text"] for turn in turns] == [f"question {i}" for i in range(120 - expected, 120)]


def test_turns_json_is_private(client, alice, bob) -> None:
    conversation, _ = conversation_with_turns(bob, 2)
    url = reverse("history-turns", args=[conversation.pk])
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("login"))
    client.force_login(alice)
    assert client.get(url).status_code == 404
    assert client.get(reverse("history-turns", args=[uuid.uuid4()])).status_code == 404
    assert client.post(reverse("history-turns", args=[conversation.pk])).status_code == 405


def test_chat_keeps_the_id_of_a_conversation_deleted_as_empty(client, alice) -> None:
    """A conversation that ended without a word is deleted; reloading its page must not 404: the
    page keeps the id and its socket opens the conversation again under it."""
    client.force_login(alice)
    gone = uuid.uuid4()
    response = client.get(reverse("chat"), {"c": str(gone)})
    assert response.status_code == 200
    assert response.context["conversation_id"] == str(gone)
    assert response.context["transcript"] == []
    assert f'data-conversation-id="{gone}"' in response.content.decode()


def test_a_resumed_page_names_a_typed_turns_latency_for_what_it_is(client, alice) -> None:
    conversation, (spoken, typed) = conversation_with_turns(alice, 2)
    TurnMetrics.objects.create(turn=spoken, voice_to_voice_ms=812)
    TurnMetrics.objects.create(turn=typed, voice_to_voice_ms=35)
    client.force_login(alice)
    page = client.get(reverse("chat"), {"c": str(conversation.pk)}).content.decode()
    assert 'title="Voice to voice 812 ms"' in page
    assert 'title="Message to first audio 35 ms"' in page
