"""Prometheus /metrics: a real spoken turn is counted, the access rules hold, workers are summed.

The first tests run in this process (one registry, counted as deltas: other tests share it);
the last runs a real daphne worker in multiprocess mode beside two other real processes.
"""

from __future__ import annotations

import runpy
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from conversations.prometheus import STAGE_FIELDS
from streaming.asr import process_stats
from tests.support.daphne_process import DAPHNE, ROOT, free_port, server_env, wait_http
from tests.support.speech import load_clip, silence
from tests.support.wsclient import connect_as, make_user

Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape() -> Samples:
    response = await AsyncClient().get("/metrics")  # the test client's address is 127.0.0.1
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


@pytest.mark.django_db(transaction=True)
async def test_a_spoken_turn_a_typed_turn_and_a_bad_message_are_counted(settings) -> None:
    """Real tiny.en, webrtcvad, offline responder and Piper through the real router."""
    settings.STREAM_CONFIG = settings.STREAM_CONFIG.replace(barge_in=False)
    before = await scrape()
    client = await connect_as(await make_user())
    during = await scrape()
    assert value(during, "voice_sessions_active") == value(before, "voice_sessions_active") + 1
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(np.concatenate([silence(0.4), load_clip("ps_goforward"), silence(1.2)]))
    await client.until_type("turn_complete", 120)
    await client.send(type="text", text="and how are you")
    await client.until(
        lambda m: m.get("type") == "turn_complete" and len(client.of_type("turn_complete")) == 2
    )
    await client.send_raw('{"type": "dance"}')
    await client.until_type("error", code="BAD_MESSAGE")
    await client.close()
    after = await scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("voice_sessions_active") == 0
    assert [m["status"] for m in client.of_type("turn_complete")] == ["completed", "completed"]
    assert delta("voice_turns_total", status="completed") == 2
    # One observation per stage, from the spoken turn only, equal to the figures the client was sent.
    (spoken, _typed) = client.of_type("metrics")
    for stage, key in STAGE_FIELDS.items():
        assert delta("voice_stage_latency_seconds_count", stage=stage) == 1, stage
        assert delta("voice_stage_latency_seconds_sum", stage=stage) == pytest.approx(spoken[key] / 1000), (
            stage
        )
    assert delta("voice_errors_total", code="BAD_MESSAGE") == 1
    asr = process_stats()
    assert value(after, "voice_asr_partials_skipped_total") == asr.partials_skipped
    assert value(after, "voice_asr_queue_depth") == asr.queued_finals == 0


@pytest.mark.django_db(transaction=True)
async def test_a_cancelled_reply_is_counted_by_its_status(scripted_engines, stream_config) -> None:
    scripted_engines.llm.replies = [["One", " two", " three", " four."]]
    scripted_engines.llm.delay = 0.3
    before = await scrape()
    client = await connect_as(await make_user())
    await client.send(type="text", text="count please")
    await client.until_type("llm_token")
    await client.send(type="cancel")
    assert (await client.until_type("turn_complete"))["status"] == "cancelled"
    await client.close()
    after = await scrape()
    cancelled = value(after, "voice_turns_total", status="cancelled")
    assert cancelled == value(before, "voice_turns_total", status="cancelled") + 1
    for stage in STAGE_FIELDS:  # a typed turn has no speech end: not a voice latency
        count = ("voice_stage_latency_seconds_count", frozenset({("stage", stage)}))
        assert after[count] == before[count]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_loopback_reads_without_credentials(client, settings, address) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 200 and b"voice_sessions_active" in response.content


@pytest.mark.parametrize("address", ["203.0.113.7", "10.0.0.5", "2001:db8::1", ""])
def test_other_addresses_get_404_without_a_configured_token(client, settings, address) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 404
    assert client.get("/metrics", REMOTE_ADDR=address, HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_other_addresses_need_the_bearer_token(client, settings) -> None:
    settings.METRICS_TOKEN = "s3cret-token"
    far = {"REMOTE_ADDR": "203.0.113.7"}
    for header in (None, "Bearer wrong", "Bearer s3cret-toke", "Basic s3cret-token", "s3cret-token"):
        extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
        response = client.get("/metrics", **far, **extra)
        assert response.status_code == 401, header
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    for header in ("Bearer s3cret-token", "bearer s3cret-token"):
        response = client.get("/metrics", **far, HTTP_AUTHORIZATION=header)
        assert response.status_code == 200 and b"voice_turns_total" in response.content
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


@pytest.mark.parametrize("directory", ["", " ", "/nonexistent/parley-metrics"])
def test_a_multiprocess_directory_that_is_not_one_stops_start_up(monkeypatch, directory) -> None:
    monkeypatch.setenv("SECRET_KEY", "k")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", directory)
    with pytest.raises(ImproperlyConfigured, match=r"PROMETHEUS_MULTIPROC_DIR=.* must name an existing"):
        runpy.run_path(str(ROOT / "voicesite" / "settings.py"))


# A process of this host's service: opens ``sessions`` sessions, ends one completed turn, says so,
# then exits at once (its sessions still open) or waits for its standard input to close.
WORKER = """
import sys, django
django.setup()
from conversations import prometheus
from streaming.events import TurnFinished
sessions = [prometheus.SessionMetrics() for _ in range(int(sys.argv[1]))]
sessions[0].observe(TurnFinished("turn-1", "completed", "hello", "hi"))
print("ready", flush=True)
if sys.argv[2] == "wait":
    sys.stdin.read()
"""


def _get(port: int, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _worker(env: dict[str, str], sessions: int, then: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(sessions), then],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_multiprocess_mode_sums_the_workers_of_a_host_and_forgets_dead_ones(tmp_path: Path) -> None:
    """A daphne worker answers for itself and two other processes; dead processes leave the live gauge."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = server_env(
        tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory), DJANGO_SETTINGS_MODULE="voicesite.settings"
    )
    port = free_port()
    daphne = subprocess.Popen(
        [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "--proxy-headers", "voicesite.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "daphne.log", "w"),
    )
    exited = staying = None
    try:
        wait_http(port)
        exited = _worker(env, 1, "exit")
        assert exited.wait(30) == 0  # a clean exit removes its live gauge: its session no longer counts
        staying = _worker(env, 2, "wait")
        status, text = _get(port)
        assert status == 200
        samples = parse(text)
        assert value(samples, "voice_sessions_active") == 2
        assert value(samples, "voice_turns_total", status="completed") == 2  # both processes' turns
        assert value(samples, "voice_turns_total", status="failed") == 0

        staying.send_signal(signal.SIGKILL)  # no chance to clean up: the scrape notices it is gone
        staying.wait(10)
        samples = parse(_get(port)[1])
        assert value(samples, "voice_sessions_active") == 0
        assert value(samples, "voice_turns_total", status="completed") == 2  # counters outlive processes

        # With --proxy-headers the address nginx forwards is the client's: not loopback, no token set.
        assert _get(port, {"X-Forwarded-For": "203.0.113.9"})[0] == 404

        assert list(directory.glob(f"gauge_livesum_{daphne.pid}.db"))
        daphne.send_signal(signal.SIGTERM)  # a worker stopped by systemd removes its own live gauges
        assert daphne.wait(60) == 0
        assert not list(directory.glob("gauge_live*.db"))
    finally:
        for proc in (daphne, exited, staying):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                proc.wait(10)
