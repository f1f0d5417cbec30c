"""Helpers for tests that run the project as real daphne processes: ports, manage.py, readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = str(Path(sys.executable).parent / "daphne")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    """The environment of a server on a SQLite file and a journal of its own in ``tmp_path``.

    It runs the production settings, not the test settings pytest exported, on the embedded
    defaults: callers add ``REDIS_URL`` (or anything else) through ``changes``.
    """
    ignored = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env.update(
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        CONVERSATION_JOURNAL_DIR=str(tmp_path / "journal"),
        SECRET_KEY="test-server-secret",
        DEBUG="0",
        LOG_LEVEL="WARNING",
    )
    env.update(changes)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``env``; its standard output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def user_with_token(env: dict[str, str], username: str) -> str:
    """Migrate, create ``username`` and return a fresh API token of theirs."""
    manage(env, "migrate", "--noinput")
    manage(
        env,
        "shell",
        "-c",
        f"from django.contrib.auth.models import User; User.objects.create_user({username!r})",
    )
    return manage(env, "create_api_token", username).strip().splitlines()[-1]


def wait_http(port: int, timeout: float = 60) -> None:
    """Wait until the server on ``port`` answers /health at all (a 503 while the model loads counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"daphne on {port} did not answer")


@contextmanager
def running_daphne(tmp_path: Path, env: dict[str, str], port: int | None = None) -> Iterator[int]:
    """One daphne worker with ``env`` on ``port`` (a free one by default), logging to
    ``tmp_path/daphne.log``; its port once it answers /health. Stopped with SIGTERM (its sessions are
    finalized) on leaving."""
    port = port or free_port()
    server = subprocess.Popen(
        [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "voicesite.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "daphne.log", "a"),
    )
    try:
        wait_http(port)
        yield port
    finally:
        server.terminate()
        server.wait(30)
