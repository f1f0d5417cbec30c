"""Database settings: SQLite's WAL, busy timeout and IMMEDIATE transactions however SQLite is configured."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PROBE = """
import json, django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    modes = [cursor.execute(f"PRAGMA {name}").fetchone()[0] for name in ("journal_mode", "busy_timeout")]
print(json.dumps([*modes, connection.transaction_mode]))
"""


def _connection_options(**env: str) -> list:
    """journal_mode, busy_timeout (ms) and transaction mode of a real connection made by the settings."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQLITE_PATH")}
    clean.update(DJANGO_SETTINGS_MODULE="voicesite.settings", SECRET_KEY="x" * 50, **env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, env=clean, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("configured_by", ["SQLITE_PATH", "DATABASE_URL"])
def test_sqlite_options_apply_however_the_database_is_configured(tmp_path, configured_by) -> None:
    path = tmp_path / "db.sqlite3"
    where = (
        {"SQLITE_PATH": str(path)}
        if configured_by == "SQLITE_PATH"
        else {"DATABASE_URL": f"sqlite:///{path}"}
    )
    assert _connection_options(**where) == ["wal", 20000, "IMMEDIATE"]
    assert _connection_options(**where, SQLITE_BUSY_TIMEOUT_S="2.5") == ["wal", 2500, "IMMEDIATE"]


def _load_settings(monkeypatch, **env: str) -> dict:
    for name in ("DATABASE_URL", "SQLITE_PATH", "SQLITE_BUSY_TIMEOUT_S", "CONVERSATION_JOURNAL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", "k")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(settings.BASE_DIR / "voicesite" / "settings.py"))


@pytest.mark.parametrize("value", ["soon", "-1", "601", "nan"])
def test_a_bad_busy_timeout_stops_start_up_naming_the_variable(monkeypatch, value) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        _load_settings(monkeypatch, SQLITE_BUSY_TIMEOUT_S=value)
    assert str(caught.value) == f"SQLITE_BUSY_TIMEOUT_S={value!r} is invalid: allowed 0..600"


def test_postgres_gets_no_sqlite_options_and_the_journal_directory_is_configurable(monkeypatch) -> None:
    loaded = _load_settings(
        monkeypatch, DATABASE_URL="postgres://u@db:5432/parley", CONVERSATION_JOURNAL_DIR="/var/lib/j"
    )
    assert "timeout" not in loaded["DATABASES"]["default"].get("OPTIONS", {})
    assert loaded["CONVERSATION_JOURNAL_DIR"] == Path("/var/lib/j")
    assert _load_settings(monkeypatch)["CONVERSATION_JOURNAL_DIR"] == settings.BASE_DIR / "journal"
