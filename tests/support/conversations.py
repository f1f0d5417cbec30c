"""A conversation to store turns in, for the conversations.services tests (test_services*.py).

The ``conversation`` fixture is registered in tests/conftest.py, so those modules request it without
importing it; ``new_turn`` records a turn in it as the voice pipeline does.
"""

from __future__ import annotations

import uuid

import pytest

from conversations import services
from conversations.models import Conversation

ENGINES = {"asr": "tiny.en", "llm": "offline", "tts": "pyttsx3"}


@pytest.fixture
def conversation(alice) -> Conversation:
    return services.start_conversation(alice, client_kind="browser", engines=ENGINES)


def new_turn(conversation: Conversation, text: str = "hello there", **kwargs) -> str:
    turn_id = str(uuid.uuid4())
    services.record_turn(conversation.pk, turn_id=turn_id, user_text=text, **kwargs)
    return turn_id
