"""A throwaway real Redis server on a free port, which a test can stop and start again.

The machine's Redis is shared with CI and other checkouts: outages are played on a private one.
"""

from __future__ import annotations

import socket
import subprocess
import time

from streaming.web.redis_layer import ResilientRedisChannelLayer
from tests.support.daphne_process import free_port


def redis_layer(url: str) -> dict:
    """``CHANNEL_LAYERS`` as the settings build it from ``REDIS_URL``."""
    backend = f"{ResilientRedisChannelLayer.__module__}.{ResilientRedisChannelLayer.__name__}"
    return {"default": {"BACKEND": backend, "CONFIG": {"hosts": [url]}}}


class RedisServer:
    """``redis-server`` without persistence on 127.0.0.1; ``url(db)`` points a client at it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Kill it, as a crash or an OOM kill would (its data is gone: nothing is persisted)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
