"""Start-up in a fresh interpreter: what the server does with a given environment, before serving."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings


def run_with_settings(
    code: str, env_changes: dict[str, str], *, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run ``code`` under the production settings, with no ``STREAM_`` variable but ``env_changes``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_") and k not in drop}
    env.update(DJANGO_SETTINGS_MODULE="voicesite.settings", **env_changes)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
