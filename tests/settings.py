"""Settings for the test suite: the production settings with a test secret key."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

RUN_DIR = Path(tempfile.mkdtemp(prefix="parley-test-"))
atexit.register(shutil.rmtree, RUN_DIR, True)

os.environ.setdefault("SECRET_KEY", "test-suite-secret-key")
# A developer's .env must not change what the suite (or a server it starts) runs with: an empty file
# stands in for it, here and in every process the tests start.
(RUN_DIR / "empty.env").touch()
os.environ.setdefault("ENV_FILE", str(RUN_DIR / "empty.env"))

from voicesite.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A journal of this run's own: a test must never replay into its test database (and drop as
# "conversation not found") writes a server left for the real one (conversations/journal.py).
CONVERSATION_JOURNAL_DIR = RUN_DIR / "journal"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, as in production: WAL, the busy timeout and another connection's write lock exist
    # only there (tests/test_recorder.py holds that lock to take the database away).
    DATABASES["default"]["TEST"] = {"NAME": str(RUN_DIR / "test.sqlite3")}  # noqa: F405

if REDIS_URL:  # noqa: F405
    # The machine's Redis outlives a run: this run's groups and session leases (streaming/web/leases.py)
    # must not meet an earlier run's users, whose ids the next test database gives out again.
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-{RUN_DIR.name}"  # noqa: F405
