"""The shipped systemd units, read as tests need them: the worker's command line, and the units
rewritten to run from this checkout instead of ``/srv/parley``.

The cluster harness starts its daphne workers with the unit's own ``ExecStart``, so the flags an
administrator installs are the ones the cluster test proves.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.support.daphne_process import DAPHNE, ROOT

UNIT_DIR = ROOT / "deploy" / "systemd"
WORKER_UNIT = UNIT_DIR / "parley@.service"
INSTALL_ROOT = "/srv/parley"
"""Where docs/deploy.md installs the checkout; the units name their paths under it."""


def directives(unit: Path, name: str) -> list[str]:
    """Every value of ``name=`` in ``unit``, continuation lines (a trailing backslash) joined."""
    logical: list[str] = []
    pending = ""
    for line in unit.read_text().splitlines():
        if not pending and line.lstrip().startswith(("#", ";")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    prefix = f"{name}="
    return [line[len(prefix) :].strip() for line in logical if line.startswith(prefix)]


def worker_command(port: int) -> list[str]:
    """The worker unit's ``ExecStart`` for instance ``port``, with this checkout's daphne."""
    (exec_start,) = directives(WORKER_UNIT, "ExecStart")
    program, *arguments = shlex.split(exec_start.replace("%i", str(port)))
    if program != f"{INSTALL_ROOT}/.venv/bin/daphne":
        raise AssertionError(f"{WORKER_UNIT.name} runs {program!r}, not the installed daphne")
    return [DAPHNE, *arguments]


def option(command: list[str], flag: str) -> str:
    """The value that follows ``flag`` in ``command``."""
    return command[command.index(flag) + 1]


def units_for_checkout(destination: Path) -> list[Path]:
    """Copies of every shipped unit in ``destination``, their ``/srv/parley`` paths pointing here."""
    copies = []
    for unit in sorted(UNIT_DIR.iterdir()):
        text = unit.read_text().replace(f"{INSTALL_ROOT}/.venv/bin/daphne", DAPHNE)
        copy = destination / unit.name
        copy.write_text(text.replace(INSTALL_ROOT, str(ROOT)))
        copies.append(copy)
    return copies
