"""Production settings: the deployment check on the example environment, .env loading, HTTPS behind a
proxy, and WebSocket origins consistent with Django's CSRF check."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.middleware.csrf import CsrfViewMiddleware
from django.test import RequestFactory
from dotenv import dotenv_values

from streaming.web.auth import _origin_allowed

ROOT = Path(settings.BASE_DIR)
PRODUCTION_ENV = ROOT / "deploy" / "production.env.example"


def _bare_env(**changes: str) -> dict[str, str]:
    """The environment of a fresh process: the machine's basics, none of the suite's settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME")
    return {**{k: v for k, v in os.environ.items() if k in keep}, **changes}


def test_deployment_check_passes_with_the_production_example(tmp_path) -> None:
    values = {name: value or "" for name, value in dotenv_values(PRODUCTION_ENV).items()}
    assert values["SECRET_KEY"] == "", "the example must not ship a secret"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    values.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),  # the example's /run/parley/metrics is not here
    )
    env = _bare_env(**values)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_example_names_only_documented_variables() -> None:
    """Every variable the production example sets is one .env.example documents: no typo goes unseen."""
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    assert set(dotenv_values(PRODUCTION_ENV)) <= documented


def _settings_of(project: Path, env: dict[str, str], *names: str) -> dict:
    """Load ``project``'s settings module in a fresh interpreter; the values of ``names``."""
    code = (
        "import json, runpy, sys; loaded = runpy.run_path(sys.argv[1]); "
        "print(json.dumps({n: loaded.get(n) for n in sys.argv[2:]}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(project / "voicesite" / "settings.py"), *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the settings module in a project directory of its own, where a .env can be written."""
    (tmp_path / "voicesite").mkdir()
    shutil.copy(ROOT / "voicesite" / "settings.py", tmp_path / "voicesite" / "settings.py")
    return tmp_path


def test_dotenv_in_the_project_directory_is_read_and_the_environment_wins(project) -> None:
    (project / ".env").write_text(
        "SECRET_KEY=from-the-file\nALLOWED_HOSTS=file.example\nSTREAM_VAD_SILENCE_MS=450\n"
    )
    env = _bare_env(ALLOWED_HOSTS="real.example")
    loaded = _settings_of(project, env, "SECRET_KEY", "ALLOWED_HOSTS", "STREAM_CONFIG")
    assert loaded["SECRET_KEY"] == "from-the-file"
    assert loaded["ALLOWED_HOSTS"] == ["real.example"]
    assert "vad_silence_ms=450" in loaded["STREAM_CONFIG"]


def test_env_file_names_another_file(project, tmp_path) -> None:
    (project / ".env").write_text("SECRET_KEY=from-the-project-file\n")
    other = tmp_path / "parley.env"
    other.write_text("SECRET_KEY=from-env-file\nALLOW_SIGNUP=0\n")
    loaded = _settings_of(project, _bare_env(ENV_FILE=str(other)), "SECRET_KEY", "ALLOW_SIGNUP")
    assert loaded == {"SECRET_KEY": "from-env-file", "ALLOW_SIGNUP": False}


def test_a_missing_env_file_stops_start_up(project, tmp_path) -> None:
    env = _bare_env(ENV_FILE=str(tmp_path / "nowhere.env"), DEBUG="1")
    code = "import runpy, sys; runpy.run_path(sys.argv[1])"
    result = subprocess.run(
        [sys.executable, "-c", code, str(project / "voicesite" / "settings.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"ENV_FILE='{tmp_path / 'nowhere.env'}' is invalid: no such file" in result.stderr


@pytest.mark.django_db
def test_behind_the_proxy_https_is_recognised_and_plain_http_redirected(client, settings) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301 and plain.url == "https://testserver/accounts/login/"
    secure = client.get("/accounts/login/", headers={"x-forwarded-proto": "https"})
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=3600"
    assert client.get("/health").status_code != 301, "monitors read /health over plain HTTP"


@pytest.mark.django_db
def test_without_trusting_the_proxy_a_forwarded_scheme_is_ignored(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/accounts/login/", headers={"x-forwarded-proto": "https"})
    assert response.status_code == 301, "a client's own X-Forwarded-Proto must not count"


TRUSTED = ["https://voice.example.com", "https://*.corp.example", "http://127.0.0.1:9000"]
ORIGINS = [
    "https://voice.example.com",
    "http://voice.example.com",
    "https://voice.example.com:8443",
    "https://a.corp.example",
    "https://b.a.corp.example",
    "https://corp.example",
    "http://a.corp.example",
    "https://a.corp.example.evil",
    "https://evilcorp.example",
    "http://127.0.0.1:9000",
    "http://127.0.0.1",
    "null",
]


@pytest.mark.parametrize("origin", ORIGINS)
def test_websocket_trusts_exactly_the_origins_csrf_trusts(settings, origin) -> None:
    """From a page on another host, the WebSocket takes an origin exactly when the CSRF check does."""
    settings.CSRF_TRUSTED_ORIGINS = TRUSTED
    settings.ALLOWED_HOSTS = ["parley.internal"]
    request = RequestFactory().post("/", headers={"origin": origin}, HTTP_HOST="parley.internal")
    csrf_trusts = CsrfViewMiddleware(lambda r: None)._origin_verified(request)
    assert _origin_allowed(origin.encode(), b"parley.internal") is csrf_trusts
