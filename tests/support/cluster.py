"""A real cluster on loopback: Debian's nginx in front of daphne workers on PostgreSQL and Redis.

Used by ``tests/test_cluster.py`` and ``make cluster``.  Everything it starts is its own: a
database created for the run and dropped after it, a Redis database number nobody else uses
(flushed before and after), an nginx master started from a generated configuration in a
temporary directory (pid file, logs and temp paths there, high ports), and daphne workers run
with the command line of ``deploy/systemd/parley@.service`` (its ``ExecStart``, read from the
unit).  The nginx locations are the shipped ``deploy/nginx/parley-proxy.conf``.  So the test
proves the configuration administrators install.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import redis

from tests.support.daphne_process import ROOT, free_port, manage
from tests.support.systemd_unit import option, worker_command

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST_URL = "redis://127.0.0.1:6379"
PROXY_SNIPPET = ROOT / "deploy" / "nginx" / "parley-proxy.conf"
APPLICATION_CLOSE_TIMEOUT_S = int(option(worker_command(0), "--application-close-timeout"))
# Response header naming the worker nginx chose, so a test knows where each session runs.
UPSTREAM_HEADER = "X-Parley-Upstream"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def unavailable_reason() -> str | None:
    """Why a cluster cannot run here (nginx, PostgreSQL or Redis missing), or None."""
    if nginx_binary() is None:
        return "nginx is not installed (make nginx installs Debian's package)"
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at 127.0.0.1:5432 as postgres with trust auth: {exc}"
    try:
        redis.Redis.from_url(REDIS_HOST_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis is not reachable at 127.0.0.1:6379: {exc}"
    return None


class ClusterDatabase:
    """A PostgreSQL database of the cluster's own, created empty and dropped afterwards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"postgres://postgres@127.0.0.1:5432/{name}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> None:
        self.drop()
        self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(sql, params).fetchall()


class Worker:
    """One daphne worker process on a loopback port; it can be stopped, killed and started again."""

    def __init__(self, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.port = port
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"daphne-{self.port}-{self.starts}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            worker_command(self.port),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait for /health to answer 200: database, channel layer and Whisper model all ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker {self.port} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                urllib.request.urlopen(f"http://{self.address}/health", timeout=2)
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise TimeoutError(f"worker {self.port} not ready: {self.log_tail()}")

    def terminate(self, timeout: float = APPLICATION_CLOSE_TIMEOUT_S + 10) -> int:
        """SIGTERM, as systemd stops a unit, and wait for the exit; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the process ends at once, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        log = self.log_dir / f"daphne-{self.port}-{self.starts}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def nginx_config(prefix: Path, listen_port: int, workers: list[Worker], log_dir: Path) -> str:
    """The main configuration of a private nginx: the shipped locations behind its own upstream."""
    # As in deploy/nginx/parley.conf: a restarting worker is never marked down.
    servers = "\n".join(f"        server {w.address} max_fails=0;" for w in workers)
    # As root, nginx's workers run as nobody; otherwise the user directive is ignored with a warning.
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {log_dir}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    log_format upstream '$time_local $request $status $request_time $upstream_addr $upstream_status';
    access_log {log_dir}/nginx-access.log upstream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    upstream parley {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{listen_port};
        add_header {UPSTREAM_HEADER} $upstream_addr always;
        location /static/ {{
            alias {ROOT / "staticfiles"}/;
        }}
        include {PROXY_SNIPPET};
    }}
}}
"""


class Nginx:
    """An nginx master of our own, from a generated configuration in a temporary directory."""

    def __init__(self, workers: list[Worker], log_dir: Path, port: int | None = None) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="parley-nginx-"))
        self.prefix.chmod(0o755)  # nginx's workers (nobody, under root) use their temp dirs here
        (self.prefix / "tmp").mkdir()
        self.port = port or free_port()
        self.conf = self.prefix / "nginx.conf"
        self.log_dir = log_dir
        self.conf.write_text(nginx_config(self.prefix, self.port, workers, log_dir))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = nginx_binary()
        assert binary is not None
        subprocess.run([binary, "-t", "-q", "-c", str(self.conf), "-p", str(self.prefix)], check=True)
        self.proc = subprocess.Popen([binary, "-c", str(self.conf), "-p", str(self.prefix)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/static/", timeout=1)
            except urllib.error.HTTPError:
                return  # nginx answers (404/403 for the bare directory)
            except OSError:
                time.sleep(0.1)
            else:
                return
        raise TimeoutError(f"nginx did not start: {(self.log_dir / 'nginx-error.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the master waits for its workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.prefix, ignore_errors=True)


class Cluster:
    """Two (or more) daphne workers behind nginx on a database and a Redis number of their own.

    ``redis_url`` puts the workers on another Redis (a private one: nothing else's keys in it);
    ``changes`` are environment variables the workers run with, as in ``server_env``.
    """

    def __init__(
        self,
        work_dir: Path,
        workers: int = 2,
        database: str = "parley_cluster",
        redis_db: int = 9,
        port: int | None = None,
        redis_url: str | None = None,
        **changes: str,
    ):
        self.work_dir = work_dir
        self.database = ClusterDatabase(database)
        self.redis_url = redis_url or f"{REDIS_HOST_URL}/{redis_db}"
        metrics_dir = work_dir / "prometheus"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        ignored = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SQLITE_PATH")
        self.env = {k: v for k, v in os.environ.items() if k not in ignored}
        self.env.update(
            DATABASE_URL=self.database.url,
            REDIS_URL=self.redis_url,
            # One host: both workers share the journal, so either replays what a killed one left.
            CONVERSATION_JOURNAL_DIR=str(work_dir / "journal"),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            SECRET_KEY="cluster-test-secret-key-not-for-production-0123456789",
            DEBUG="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            LOG_LEVEL="WARNING",
            # After a failover every session of one user may land on one worker.
            STREAM_MAX_SESSIONS_PER_USER="16",
        )
        self.env.update(changes)
        self.workers = [Worker(free_port(), self.env, work_dir) for _ in range(workers)]
        self.nginx = Nginx(self.workers, work_dir, port)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.nginx.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"

    def _flush_redis(self) -> None:
        redis.Redis.from_url(self.redis_url).flushdb()

    def start(self) -> None:
        self._flush_redis()
        self.database.create()
        manage(self.env, "migrate", "--noinput")
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready()
        self.nginx.start()

    def create_token(self, username: str) -> str:
        """A user in the cluster's database and a fresh API token of theirs."""
        manage(
            self.env,
            "shell",
            "-c",
            f"from django.contrib.auth.models import User; User.objects.create_user({username!r})",
        )
        return manage(self.env, "create_api_token", username).strip().splitlines()[-1]

    def restart(self, worker: Worker) -> int:
        """SIGTERM one worker, wait for it to exit, start it again and wait until it is ready."""
        status = worker.terminate()
        worker.start()
        worker.wait_ready()
        return status

    def stop(self) -> None:
        self.nginx.stop()
        for worker in self.workers:
            worker.stop()
        try:
            self.database.drop()
            self._flush_redis()
        except (psycopg.Error, redis.RedisError):
            pass
