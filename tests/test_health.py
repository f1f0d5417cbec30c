"""GET /health: database, channel layer and ASR model readiness; 200 when the worker can serve sessions."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import OperationalError, close_old_connections, connection
from django.urls import reverse

import streaming.asr
import streaming.asr.whisper
from conversations import health, services
from conversations.journal import Segment, current_journal
from conversations.recorder import ConversationRecorder
from conversations.replay import replayer_for
from conversations.writes import Write
from tests.support.daphne_process import free_port
from tests.support.dboutage import WriteLock, shorten_lock_wait
from tests.support.redis_server import RedisServer, redis_layer
from tests.support.wsclient import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def restore_asr_registry(monkeypatch):
    """Tests that point the shared ASR engine elsewhere put the original back afterwards."""
    monkeypatch.setattr(streaming.asr.whisper, "_current", streaming.asr.whisper._current)


@pytest.fixture
def asr_ready(monkeypatch):
    monkeypatch.setattr(health, "asr_readiness", lambda: ("ready", "tiny.en (stub for this test)"))


@pytest.fixture(scope="module")
def redis_url():
    """A throwaway real Redis server for the channel layer checks."""
    server = RedisServer()
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()


def test_ready_with_the_real_model(client, restore_asr_registry, settings) -> None:
    streaming.asr.start_loading(settings.STREAM_CONFIG)
    streaming.asr.get_shared_asr(settings.STREAM_CONFIG).start_loading().result(timeout=120)
    response = client.get(reverse("health"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    database = body["components"]["database"]
    assert (database["ready"], database["state"], database["detail"]) == (True, "ready", connection.vendor)
    assert (database["writes"]["state"], database["writes"]["pending"]) == ("ok", 0)
    assert body["components"]["channel_layer"] == {
        "ready": True,
        "state": "ready",
        "detail": type(get_channel_layer()).__name__,
    }
    assert body["components"]["asr_model"]["state"] == "ready"
    assert "no-cache" in response["Cache-Control"]


def test_failed_model_load_is_503(client, restore_asr_registry, settings) -> None:
    broken = settings.STREAM_CONFIG.replace(model_whisper="/nonexistent/whisper-model")
    engine = streaming.asr.get_shared_asr(broken)
    with pytest.raises(Exception, match="does not exist"):
        engine.start_loading().result(timeout=30)
    response = client.get(reverse("health"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["asr_model"]["state"] == "failed"
    assert "/nonexistent/whisper-model" in body["components"]["asr_model"]["detail"]
    assert body["components"]["database"]["ready"] is True


@pytest.mark.parametrize("state", ["idle", "loading", "failed"])
def test_model_not_ready_is_503(client, monkeypatch, state) -> None:
    monkeypatch.setattr(health, "asr_readiness", lambda: (state, f"model is {state}"))
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["components"]["asr_model"] == {
        "ready": False,
        "state": state,
        "detail": f"model is {state}",
    }


def test_unimportable_asr_engine_is_reported(client, monkeypatch) -> None:
    def missing():
        raise ImportError("No module named 'faster_whisper'")

    monkeypatch.setattr(health, "asr_readiness", missing)
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["components"]["asr_model"]["state"] == "failed"


def test_database_failure_is_unavailable(client, monkeypatch, asr_ready) -> None:
    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get(reverse("health"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["components"]["database"]["ready"] is False
    assert "could not connect" in body["components"]["database"]["detail"]


def test_only_operators_read_why_a_component_failed(client, settings, monkeypatch, asr_ready) -> None:
    """An error's text names hosts, ports and paths: a client from elsewhere (nginx exposes /health)
    reads the states alone; this host and a bearer of METRICS_TOKEN read the details too."""
    settings.METRICS_TOKEN = "operator-secret"

    def refuse(*args, **kwargs):
        raise OperationalError('connection to server at "db.internal" (10.0.0.7), port 5432 failed')

    monkeypatch.setattr(connection, "cursor", refuse)
    outside = client.get(reverse("health"), REMOTE_ADDR="203.0.113.9")
    assert outside.status_code == 503
    assert outside.json() == {
        "status": "unavailable",
        "components": {
            "database": {"ready": False, "state": "failed"},
            "channel_layer": {"ready": True, "state": "ready"},
            "asr_model": {"ready": True, "state": "ready"},
        },
    }
    assert "db.internal" not in outside.content.decode()
    for operator in (
        client.get(reverse("health"), REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer operator-secret"),
        client.get(reverse("health")),  # the test client's address is loopback
    ):
        assert "db.internal" in operator.json()["components"]["database"]["detail"]
    wrong = client.get(reverse("health"), REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer guess")
    assert "detail" not in wrong.json()["components"]["database"]


def test_real_redis_channel_layer_round_trip(client, settings, asr_ready, redis_url) -> None:
    settings.CHANNEL_LAYERS = redis_layer(redis_url)
    response = client.get(reverse("health"))
    assert response.status_code == 200, response.json()
    assert response.json()["components"]["channel_layer"]["detail"] == "ResilientRedisChannelLayer"


def test_unreachable_redis_is_degraded_but_serving(client, settings, asr_ready) -> None:
    """Sessions do not need Redis (test_redis_outage.py): the worker stays in the balancer's pool."""
    settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{free_port()}/0")
    response = client.get(reverse("health"))
    assert response.status_code == 200
    channel_layer = response.json()["components"]["channel_layer"]
    assert channel_layer["ready"] is False and channel_layer["state"] == "failed"
    assert "Connection" in channel_layer["detail"]
    assert response.json()["status"] == "degraded"


def test_health_needs_no_login_and_only_reads(client, asr_ready) -> None:
    assert client.get(reverse("health")).status_code == 200
    assert client.head(reverse("health")).status_code == 200
    assert client.post(reverse("health")).status_code == 405


@pytest.fixture
def journal():
    yield current_journal()
    replayer_for(current_journal()).stop()


@pytest.mark.django_db(transaction=True)
async def test_failing_writes_make_the_database_degraded_though_reads_work(
    async_client, asr_ready, monkeypatch, journal
) -> None:
    """A locked database still answers SELECT 1; /health must not say ok while writes fail."""
    shorten_lock_wait(monkeypatch)
    user = await make_user()
    conversation = await database_sync_to_async(services.start_conversation)(
        user, client_kind="api", engines={}
    )
    delayed = asyncio.Event()

    async def on_delayed(error) -> None:
        if error is not None:
            delayed.set()

    recorder = ConversationRecorder(str(conversation.pk), on_delayed=on_delayed, journal=journal)
    recorder.start()
    lock = WriteLock()
    await asyncio.to_thread(lock.acquire)
    try:
        recorder.record(services.record_turn, str(conversation.pk), turn_id=str(uuid.uuid4()), user_text="hi")
        await asyncio.wait_for(delayed.wait(), 10)
        response = await async_client.get(reverse("health"))
        assert response.status_code == 503
        body = response.json()
        database = body["components"]["database"]
        assert (body["status"], database["ready"], database["state"]) == ("degraded", False, "degraded")
        writes = database["writes"]
        assert (writes["state"], writes["pending"]) == ("failing", 1)
        assert "lock" in writes["last_failure"] and writes["last_failure_at"]
    finally:
        await asyncio.to_thread(lock.release)
    await recorder.aclose()
    response = await async_client.get(reverse("health"))
    assert response.status_code == 200, response.json()
    assert response.json()["components"]["database"]["writes"]["pending"] == 0
    # The test client leaves the view's connection open (Django's choice for tests); close it.
    await database_sync_to_async(close_old_connections)()


def test_writes_waiting_in_the_journal_make_the_database_degraded(client, asr_ready, journal) -> None:
    """A dead worker's unreplayed segment: no recorder of this process is failing, yet writes wait."""
    segment = Segment.create(journal.directory, str(uuid.uuid4()))
    queued_at = time.time() - 60
    segment.append(Write(1, "record_metrics", ("turn", {}), {}, queued_at))
    segment.close()
    try:
        response = client.get(reverse("health"))
        assert response.status_code == 503
        writes = response.json()["components"]["database"]["writes"]
        assert (writes["state"], writes["pending"]) == ("failing", 1)
        assert writes["oldest_pending_s"] >= 60
    finally:
        segment.path.unlink()
    assert client.get(reverse("health")).status_code == 200
