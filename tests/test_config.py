"""Configuration bounds: StreamConfig parsing, start-up failures naming the variable, .env.example."""

from __future__ import annotations

import dataclasses
import os
import re
import runpy
import subprocess
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from streaming.config import ConfigError, StreamConfig
from tests.support.startup import run_with_settings

FIELDS = {f.metadata["env"]: f for f in dataclasses.fields(StreamConfig)}
NUMERIC = [name for name, f in FIELDS.items() if f.metadata["low"] is not None]
DJANGO_VARIABLES = (
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "REDIS_URL",
    "TIME_ZONE",
    "LOG_LEVEL",
    "SQLITE_PATH",
    "SQLITE_BUSY_TIMEOUT_S",
    "CONVERSATION_JOURNAL_DIR",
    "TRUST_PROXY_HEADERS",
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "ALLOW_SIGNUP",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_LOCKOUT_MINUTES",
    "API_TOKEN_MAX_DAYS",
    "METRICS_TOKEN",
    "PROMETHEUS_MULTIPROC_DIR",
)


def test_defaults_when_unset_or_blank() -> None:
    assert StreamConfig.from_env({}) == StreamConfig()
    assert StreamConfig.from_env({"STREAM_VAD_SILENCE_MS": "  "}).vad_silence_ms == 700


def test_valid_values_are_typed() -> None:
    config = StreamConfig.from_env(
        {
            "STREAM_VAD_SILENCE_MS": " 450 ",
            "STREAM_ASR_TIMEOUT_S": "7.5",
            "STREAM_BARGE_IN": "off",
            "STREAM_SPECULATIVE_FINAL": "YES",
            "STREAM_VAD_FRAME_MS": "20",
            "STREAM_TTS_ENGINE": "pyttsx3",
            "STREAM_MODEL_WHISPER": "small-int8",
            "OPENAI_TEMPERATURE": "0",
        }
    )
    assert (config.vad_silence_ms, config.asr_timeout_s) == (450, 7.5)
    assert (config.barge_in, config.speculative_final) == (False, True)
    assert (config.vad_frame_ms, config.tts_engine, config.model_whisper) == (20, "pyttsx3", "small-int8")
    assert config.openai_temperature == 0.0


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_bounds_are_inclusive(name) -> None:
    field = FIELDS[name]
    low, high = field.metadata["low"], field.metadata["high"]
    for value in (low, high):
        parsed = getattr(StreamConfig.from_env({name: _text(value, field)}), field.name)
        assert parsed == value
    step = 1 if field.type in ("int", int) else 0.001
    for value in (low - step, high + step):
        with pytest.raises(ConfigError) as caught:
            StreamConfig.from_env({name: _text(value, field)})
        assert caught.value.name == name and caught.value.value == _text(value, field)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("STREAM_VAD_SILENCE_MS", "99999", "100..5000"),
        ("STREAM_VAD_SILENCE_MS", "50", "100..5000"),
        ("STREAM_VAD_SILENCE_MS", "seven hundred", "100..5000"),
        ("STREAM_VAD_SILENCE_MS", "700.5", "100..5000"),
        ("STREAM_ASR_TIMEOUT_S", "nan", "1..300"),
        ("STREAM_ASR_TIMEOUT_S", "0.5", "1..300"),
        ("STREAM_ASR_TIMEOUT_S", "soon", "1..300"),
        ("OPENAI_TEMPERATURE", "2.5", "0..2"),
        ("STREAM_BARGE_IN", "maybe", "1/0, true/false, yes/no, on/off"),
        ("STREAM_SPECULATIVE_FINAL", "2", "1/0, true/false, yes/no, on/off"),
        ("STREAM_VAD_FRAME_MS", "25", "one of 10, 20, 30"),
        ("STREAM_TTS_ENGINE", "festival", "one of piper, pyttsx3"),
    ],
)
def test_invalid_values_name_variable_value_and_range(name, value, allowed) -> None:
    with pytest.raises(ConfigError) as caught:
        StreamConfig.from_env({name: value})
    error = caught.value
    assert (error.name, error.value, error.allowed) == (name, value, allowed)
    assert str(error) == f"{name}={value!r} is invalid: allowed {allowed}"


def test_tts_worker_processes_keep_their_variable_name() -> None:
    assert StreamConfig.from_env({"STREAM_TTS_THREAD_WORKERS": "3"}).tts_worker_processes == 3
    with pytest.raises(ConfigError, match="STREAM_TTS_THREAD_WORKERS"):
        StreamConfig.from_env({"STREAM_TTS_THREAD_WORKERS": "0"})


def test_unknown_and_removed_variables_are_ignored() -> None:
    """A deployment that still sets a removed variable (or mistypes one) starts with the defaults."""
    removed = {"STREAM_BACKPRESSURE_SKIP_FRAMES": "3", "STREAM_NO_SUCH_SETTING": "x"}
    assert StreamConfig.from_env(removed) == StreamConfig()


def test_replace_validates_like_the_environment() -> None:
    assert StreamConfig().replace(vad_silence_ms=500).vad_silence_ms == 500
    with pytest.raises(ConfigError, match="STREAM_VAD_SILENCE_MS"):
        StreamConfig().replace(vad_silence_ms=1)


def test_large_bounds_are_printed_exactly() -> None:
    with pytest.raises(ConfigError) as caught:
        StreamConfig.from_env({"STREAM_MAX_MESSAGE_BYTES": "99999999"})
    assert caught.value.allowed == "1024..16777216"


def _django_setup(env_changes: dict[str, str], *, drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Start Django with the production settings in a fresh interpreter."""
    return run_with_settings("import django; django.setup()", env_changes, drop=drop)


def test_django_start_up_fails_naming_the_stream_variable() -> None:
    result = _django_setup({"SECRET_KEY": "x" * 50, "STREAM_VAD_SILENCE_MS": "99999"})
    assert result.returncode != 0
    expected = "ImproperlyConfigured: STREAM_VAD_SILENCE_MS='99999' is invalid: allowed 100..5000"
    assert expected in result.stderr


def test_django_start_up_requires_secret_key_without_debug() -> None:
    result = _django_setup({"DEBUG": "0"}, drop=("SECRET_KEY",))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr


def _load_settings(monkeypatch, **env: str) -> dict:
    """Execute voicesite/settings.py in-process with ``env`` (quicker than a subprocess per case)."""
    for name in (
        "SECRET_KEY",
        "DEBUG",
        "DATABASE_URL",
        "REDIS_URL",
        *[n for n in os.environ if n.startswith("STREAM_")],
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(settings.BASE_DIR / "voicesite" / "settings.py"))


def test_debug_allows_a_missing_secret_key(monkeypatch) -> None:
    loaded = _load_settings(monkeypatch, DEBUG="1")
    assert loaded["DEBUG"] is True and loaded["SECRET_KEY"]


def test_invalid_debug_value_names_the_variable(monkeypatch) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG='maybe' is invalid"):
        _load_settings(monkeypatch, DEBUG="maybe", SECRET_KEY="k")


def test_environment_reaches_settings(monkeypatch, tmp_path) -> None:
    loaded = _load_settings(
        monkeypatch,
        SECRET_KEY="k",
        ALLOWED_HOSTS="voice.example.com, other.example.com",
        SQLITE_PATH=str(tmp_path / "x.sqlite3"),
        REDIS_URL="redis://127.0.0.1:6390/1",
        STREAM_PCM_CHUNK_SIZE="640",
    )
    assert loaded["ALLOWED_HOSTS"] == ["voice.example.com", "other.example.com"]
    assert loaded["DATABASES"]["default"]["NAME"] == str(tmp_path / "x.sqlite3")
    assert loaded["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == ["redis://127.0.0.1:6390/1"]
    assert loaded["STREAM_CONFIG"].pcm_chunk_size == 640


def test_production_defaults_are_safe_and_open_for_development(monkeypatch) -> None:
    production = _load_settings(monkeypatch, SECRET_KEY="k")
    assert "SECURE_PROXY_SSL_HEADER" not in production, "trusting X-Forwarded-Proto is opt-in"
    assert production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    assert (production["SECURE_HSTS_SECONDS"], production["SECURE_SSL_REDIRECT"]) == (0, False)
    assert production["ALLOW_SIGNUP"] and production["API_TOKEN_MAX_DAYS"] == 0
    assert (production["AXES_FAILURE_LIMIT"], production["AXES_COOLOFF_TIME"]) == (5, timedelta(minutes=15))
    development = _load_settings(monkeypatch, DEBUG="1")
    assert not development["SESSION_COOKIE_SECURE"], "http://127.0.0.1 must keep its session"


def test_production_variables_reach_settings(monkeypatch) -> None:
    loaded = _load_settings(
        monkeypatch,
        SECRET_KEY="k",
        TRUST_PROXY_HEADERS="1",
        SECURE_SSL_REDIRECT="yes",
        SECURE_COOKIES="0",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="on",
        SECURE_HSTS_PRELOAD="true",
        ALLOW_SIGNUP="0",
        LOGIN_FAILURE_LIMIT="10",
        LOGIN_LOCKOUT_MINUTES="60",
        API_TOKEN_MAX_DAYS="90",
    )
    assert loaded["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert loaded["SECURE_SSL_REDIRECT"] and not loaded["SESSION_COOKIE_SECURE"]
    assert loaded["SECURE_HSTS_SECONDS"] == 31536000
    assert loaded["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and loaded["SECURE_HSTS_PRELOAD"]
    assert not loaded["ALLOW_SIGNUP"] and loaded["API_TOKEN_MAX_DAYS"] == 90
    assert (loaded["AXES_FAILURE_LIMIT"], loaded["AXES_COOLOFF_TIME"]) == (10, timedelta(hours=1))


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("SECURE_HSTS_SECONDS", "-1", "0..63072000"),
        ("SECURE_HSTS_SECONDS", "1.5", "0..63072000"),
        ("LOGIN_FAILURE_LIMIT", "0", "1..1000"),
        ("LOGIN_LOCKOUT_MINUTES", "forever", "1..10080"),
        ("API_TOKEN_MAX_DAYS", "4000", "0..3650"),
        ("ALLOW_SIGNUP", "closed", "1/0, true/false, yes/no, on/off"),
    ],
)
def test_invalid_production_values_name_the_variable(monkeypatch, name, value, allowed) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        _load_settings(monkeypatch, SECRET_KEY="k", **{name: value})
    assert str(caught.value) == f"{name}={value!r} is invalid: allowed {allowed}"


def test_removed_variable_does_not_stop_start_up(monkeypatch) -> None:
    loaded = _load_settings(monkeypatch, SECRET_KEY="k", STREAM_BACKPRESSURE_SKIP_FRAMES="3")
    openai_env = {name: value for name, value in os.environ.items() if name.startswith("OPENAI_")}
    assert loaded["STREAM_CONFIG"] == StreamConfig.from_env(openai_env)


def test_env_example_documents_every_variable() -> None:
    text = (settings.BASE_DIR / ".env.example").read_text()
    for name in DJANGO_VARIABLES:
        assert re.search(rf"^#? ?{name}=", text, re.M), f"{name} missing from .env.example"
    for name, _default, allowed, _doc in StreamConfig.documented_variables():
        block = re.search(rf"# Allowed: (?P<allowed>.*)\. Default: .*\n# {name}=(?P<value>.*)$", text, re.M)
        assert block, f"{name} missing from .env.example"
        field = FIELDS[name]
        if field.metadata["low"] is not None:
            low, high = (_text(field.metadata[key], field) for key in ("low", "high"))
            assert block["allowed"] == f"{low}..{high}", name
        else:
            assert block["allowed"] == allowed, name
        assert StreamConfig.from_env({name: block["value"].strip('"')}) == StreamConfig(), (
            f"{name}: the example value is not the default"
        )


def test_env_example_documents_no_other_pipeline_variable() -> None:
    text = (settings.BASE_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^# ?((?:STREAM|OPENAI)_[A-Z0-9_]+)=", text, re.M))
    assert documented == set(FIELDS)


def _text(value: float, field: dataclasses.Field) -> str:
    return str(int(value)) if field.type in ("int", int) else f"{value:g}"
