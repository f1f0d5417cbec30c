"""``python -m bench.journal_cost``: what the write-ahead journal costs each conversation write.

Every write the recorder queues is appended to the session's journal segment on the
event loop (JSON plus one ``write(2)``) before the client sees the event, and flushed
(``fsync``) on the writer thread before the database is tried.  This measures both on
the journal's disk (``CONVERSATION_JOURNAL_DIR``, or ``--dir``): medians of repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voicesite.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from conversations import services  # noqa: E402
from conversations.journal import Segment  # noqa: E402
from conversations.writes import Write  # noqa: E402

TEXT = "What is the weather like in Lisbon tomorrow, and should I take an umbrella with me?"


def measure(directory: Path, writes: int, repeats: int) -> tuple[float, float]:
    """Median microseconds of one append, median milliseconds of one fsync after an append."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        segment = Segment.create(Path(scratch), str(uuid.uuid4()))
        appends, syncs = [], []
        for repeat in range(repeats):
            spent = 0.0
            for seq in range(writes):
                kwargs = {"turn_id": str(uuid.uuid4()), "user_text": TEXT, "at": time.time()}
                began = time.perf_counter()
                segment.append(Write.of(repeat * writes + seq + 1, services.record_turn, ("c",), kwargs, 0.0))
                spent += time.perf_counter() - began
                if seq % 10 == 0:  # the recorder syncs before each database attempt
                    began = time.perf_counter()
                    segment.sync()
                    syncs.append((time.perf_counter() - began) * 1000)
            appends.append(spent / writes * 1e6)
        segment.discard()
    return statistics.median(appends), statistics.median(syncs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(settings.CONVERSATION_JOURNAL_DIR))
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    append_us, fsync_ms = measure(args.dir, args.writes, args.repeats)
    print(f"journal on {args.dir}")
    print(f"append on the event loop (JSON + write): median {append_us:.1f} us per write")
    print(f"fsync on the writer thread: median {fsync_ms:.2f} ms")


if __name__ == "__main__":
    main()
