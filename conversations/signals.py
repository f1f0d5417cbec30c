"""Account changes that live voice sessions must hear of; ``streaming/web/notices.py`` tells them.

Sent after the change is committed, so a session that re-checks its credential reads it.  Nothing
here waits for the sessions: a worker that misses the notice (Redis down) still ends the session
at its next periodic check (``streaming/web/watchdog.py``, within 30 s).
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

credentials_changed = Signal()
"""Sent with ``user_id``: one of the user's tokens was revoked, or the account was deactivated."""


def announce_credentials_changed(user_id: int) -> None:
    """Send :data:`credentials_changed` for ``user_id`` once the current transaction commits; a
    receiver that fails is logged and does not fail the change."""
    transaction.on_commit(lambda: credentials_changed.send(sender=None, user_id=user_id), robust=True)


def announce_deactivation(sender, instance, **kwargs) -> None:
    """``post_save`` of the user model: a deactivated account's sessions must end."""
    if not instance.is_active:
        announce_credentials_changed(instance.pk)
