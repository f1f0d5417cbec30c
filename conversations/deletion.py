"""Deleting a conversation its owner no longer wants, while a session of it may still be writing.

The live sessions are told to end (``signals.py`` announces the deletion); until they do, their
writes may race the delete.  One landing between Django's collecting of the rows to delete and
the deleting (a turn's metrics) fails the delete with a foreign-key error, so it is tried again
on the rows as they are then; a write after the delete finds nothing and is dropped.  SQLite
begins every transaction IMMEDIATE (``voicesite/settings.py``), so there nothing lands in between.
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction

from .models import Conversation
from .retry import retry_transient

ATTEMPTS = 3


@retry_transient
def delete_conversation(conversation_id: uuid.UUID | str) -> bool:
    """Delete the conversation and everything in it; False if it was not there."""
    key = uuid.UUID(str(conversation_id))
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                conversation = Conversation.objects.filter(pk=key).first()
                if conversation is None:
                    return False
                conversation.delete()
                return True
        except IntegrityError:
            if attempt == ATTEMPTS:
                raise
            attempt += 1
