"""``make cluster``: the test's cluster for people — nginx in front of two daphne workers, until Ctrl-C.

It is the set-up of ``tests/test_cluster.py`` (a database ``parley_cluster`` and Redis database 9
of its own on this machine's PostgreSQL and Redis, both emptied on exit), left running so that
one can open the chat page through nginx, stream a recording, and stop, restart or kill a worker
by hand to watch the sessions move.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tests.support.cluster import Cluster, unavailable_reason


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090, help="nginx's port on 127.0.0.1")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot start a cluster: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="parley-cluster-") as work_dir:
        cluster = Cluster(Path(work_dir), workers=args.workers, port=args.port)
        try:
            cluster.start()
            token = cluster.create_token("demo")
            workers = "\n".join(
                f"  {w.address}  pid {w.proc.pid}  log {w.log_dir}/daphne-{w.port}-1.log"
                for w in cluster.workers
            )
            print(
                f"nginx on {cluster.http_url} in front of:\n{workers}\n"
                f"API token of user demo: {token}\n"
                f"  .venv/bin/python examples/stream_wav.py tests/data/speech/jfk_inaugural_1961.wav "
                f"--url {cluster.ws_url} --token {token}\n"
                "Stop a worker (kill -TERM <pid>) or crash it (kill -9 <pid>): its sessions resume on\n"
                "the other one; nothing restarts it here (systemd does in production). Ctrl-C stops all.",
                flush=True,
            )
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            stop.wait()
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
