"""Settings for the test suite: the production settings with a test secret key."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-secret-key")

from voicesite.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
