"""Changes that live voice sessions must hear of; ``streaming/web/notices.py`` tells them.

A session may go on while its credential authenticates and its conversation exists. Revoking a
token, deactivating an account and deleting a conversation (by its owner on the history page, by an
admin, or with the user) announce :data:`access_changed` after the change is committed, so a session
that re-checks reads it.  Nothing here waits for the sessions: a worker that misses the notice (Redis
down) still ends the session at its next periodic check (``streaming/web/watchdog.py``, within 30 s).
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

access_changed = Signal()
"""Sent with ``user_id``: one of the user's tokens was revoked, the account deactivated, or one of
the user's conversations deleted."""


def announce_access_changed(user_id: int) -> None:
    """Send :data:`access_changed` for ``user_id`` once the current transaction commits; a receiver
    that fails is logged and does not fail the change."""
    transaction.on_commit(lambda: access_changed.send(sender=None, user_id=user_id), robust=True)


def announce_deactivation(sender, instance, **kwargs) -> None:
    """``post_save`` of the user model: a deactivated account's sessions must end."""
    if not instance.is_active:
        announce_access_changed(instance.pk)


def announce_conversation_deleted(sender, instance, **kwargs) -> None:
    """``post_delete`` of a conversation: its live sessions must end, or what is said next would be
    answered and then dropped, since there is nothing left to store it in."""
    announce_access_changed(instance.owner_id)
