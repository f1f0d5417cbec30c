"""A real daphne serving the project on a free port, with a throwaway SQLite database and API token."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
USERNAME = "bench"
# Shared infrastructure and the LLM endpoint are chosen by the benchmark, never inherited.
_DROPPED = ("DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL")


class ServerError(RuntimeError):
    """The benchmark server could not be prepared or did not become ready."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict[str, str], *args: str, root: Path = ROOT) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise ServerError(f"manage.py {args[0]} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def base_env(workdir: Path, overrides: dict[str, str]) -> dict[str, str]:
    """The server's environment: ours without shared databases, a private SQLite file, ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(
        SQLITE_PATH=str(workdir / "bench.sqlite3"),
        # The journal of writes the database refused belongs to this throwaway database: not in the tree.
        CONVERSATION_JOURNAL_DIR=str(workdir / "journal"),
        SECRET_KEY="bench-only",
        DEBUG="0",
        LOG_LEVEL="WARNING",
    )
    env.update(overrides)
    return env


def prepare_database(workdir: Path, root: Path = ROOT) -> str:
    """Migrate a fresh SQLite database in ``workdir``, create the bench user; return its API token.

    ``root`` is the project checkout whose code migrates it (another worktree for "before" figures).
    """
    env = base_env(workdir, {})
    _manage(env, "migrate", "--noinput", root=root)
    _manage(
        env,
        "shell",
        "-c",
        f"from django.contrib.auth.models import User; User.objects.create_user({USERNAME!r})",
        root=root,
    )
    return _manage(env, "create_api_token", USERNAME, root=root).strip().splitlines()[-1]


@dataclass
class BenchServer:
    """``with BenchServer(workdir, env) as server``: daphne running, the Whisper model loaded."""

    workdir: Path
    env: dict[str, str]
    name: str = "server"
    root: Path = ROOT
    """The project checkout daphne serves (another worktree for "before" figures)."""
    port: int = field(default_factory=_free_port)
    _proc: subprocess.Popen[bytes] | None = None
    _log: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def __enter__(self) -> BenchServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 180) -> None:
        """Start daphne and wait until ``/health`` reports every component ready."""
        limit = self.env.get("STREAM_MAX_MESSAGE_BYTES", "262144")
        self._log = open(self.log_path, "w")  # closed in stop()
        self._proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--websocket-max-message-size",
                str(int(limit) * 4),
                "--websocket-max-frame-size",
                str(int(limit) * 4),
                "--application-close-timeout",
                "30",
                "voicesite.asgi:application",
            ],
            cwd=self.root,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ServerError(f"daphne exited with {self._proc.returncode}:\n{self.log_tail()}")
            health = self.health()
            if health is not None:
                asr = health["components"]["asr_model"]
                if health["status"] == "ok":
                    return
                if asr["state"] == "failed":
                    raise ServerError(f"the Whisper model failed to load: {asr['detail']}")
                last = json.dumps(health["components"])
            time.sleep(0.3)
        raise ServerError(f"the server was not ready within {timeout_s:g} s ({last}):\n{self.log_tail()}")

    def health(self) -> dict | None:
        """The ``/health`` report, or None while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            return json.load(exc)  # 503 while the model loads still carries the report
        except OSError:
            return None

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit within 20 s."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
