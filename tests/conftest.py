"""Shared fixtures: two users, alice's conversation (tests/support/conversations.py), scripted engines
behind the real consumer, per-test pipeline settings.

Tests that take ``scripted_engines`` run the real consumer, session, VAD and database with
scripted ASR/LLM/TTS (exact timelines); the others run the real engines.
"""

from __future__ import annotations

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from conversations.recorder import WRITER
from streaming.engines import Engines
from streaming.web import consumer as consumers
from tests.support.conversations import conversation  # noqa: F401 (a fixture for test_services*.py)
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, let go of by the threads that used it before it is dropped.

    Async tests read through ``sync_to_async`` (asgiref's one thread for such calls) and the
    recorder writes on a thread of its own; neither closes its last connection, and
    PostgreSQL refuses to drop a database that a connection is still open on.
    """
    yield
    for thread in (SyncToAsync.single_thread_executor, WRITER):
        thread.submit(connections.close_all).result()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def scripted_engines(monkeypatch):
    """Scripted engines behind the real consumer; tests adjust them before connecting."""
    scripted = Engines(
        asr=ScriptedASR(["hello there", "second thing", "third"]),
        llm=ScriptedLLM([["Hi", " there."], ["Sure."], ["Ok."]]),
        tts=ScriptedTTS(seconds_per_char=0.001),
    )
    monkeypatch.setattr(consumers, "shared_engines", lambda config: scripted)
    return scripted


@pytest.fixture
def stream_config(settings):
    """Apply StreamConfig changes for one test."""

    def apply(**changes):
        settings.STREAM_CONFIG = settings.STREAM_CONFIG.replace(**changes)

    apply(barge_in=False, vad_silence_ms=500)
    return apply
