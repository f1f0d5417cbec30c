"""The systemd units in ``deploy/systemd``: systemd itself reads them without a complaint, and the
worker's flags agree with the server's limits.  (systemd is not PID 1 here, so the units cannot be
started; the cluster test runs the worker unit's own command line instead.)"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from streaming.config import StreamConfig
from tests.support.systemd_unit import WORKER_UNIT, directives, option, units_for_checkout, worker_command

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze (Debian's systemd) is not installed")
def test_systemd_reads_every_unit_without_a_warning(tmp_path) -> None:
    units = units_for_checkout(tmp_path)
    # A template is verified through an instance of it, as `systemctl enable parley@8001` names it.
    names = [u.name.replace("@.service", "@8001.service") for u in units]
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown keys and bad values are only warnings (exit status 0): any output is a defect.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr


def test_the_worker_accepts_the_largest_message_the_server_allows() -> None:
    """daphne's frame limit must leave room for a message of ``STREAM_MAX_MESSAGE_BYTES``, which
    the server answers with a clear error rather than a dropped connection; the unit says to
    change both together."""
    command = worker_command(8001)
    largest = StreamConfig().max_message_bytes
    assert int(option(command, "--websocket-max-message-size")) == 4 * largest
    assert int(option(command, "--websocket-max-frame-size")) == 4 * largest


def test_systemd_waits_for_the_sessions_to_finish_before_it_kills() -> None:
    command = worker_command(8001)
    (stop_timeout,) = directives(WORKER_UNIT, "TimeoutStopSec")
    assert int(option(command, "--application-close-timeout")) < int(stop_timeout)
    assert directives(WORKER_UNIT, "KillSignal") == ["SIGTERM"]
    assert "--proxy-headers" in command and option(command, "-b") == "127.0.0.1"


def test_the_worker_command_is_read_whole_from_the_unit() -> None:
    (exec_start,) = directives(WORKER_UNIT, "ExecStart")
    assert shlex.split(exec_start)[-1] == "voicesite.asgi:application"
    assert option(worker_command(8123), "-p") == "8123"
