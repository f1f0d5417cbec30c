"""Attaching a session to its conversation, so that a session attached is always detached.

``services.open_conversation`` adds the session's key to the conversation's ``live_sessions`` on a
database thread, and only the session's close (``end_conversation``) takes it out.  A connect cut
off in between — daphne cancels a consumer whose client left, and every consumer at shutdown,
whatever it awaits, while the thread goes on — or a session whose start fails after the attach
would leave the key there for good: the conversation stays "open" in the history and, if empty,
is never deleted.  :func:`attach` waits for a cut-off attach and undoes it; :func:`detach` undoes
the attach of a session that never opened.
"""

from __future__ import annotations

import asyncio
import logging

from django.db import DatabaseError

from conversations import services
from conversations.models import EndReason
from conversations.recorder import ConversationRecorder
from conversations.replay import catch_up
from conversations.session_db import run_off_shared_thread

logger = logging.getLogger(__name__)


async def attach(
    user, conversation_id: str, *, client_kind: str, engines: dict[str, str]
) -> services.OpenedConversation:
    """Open the conversation with a new session attached; a resumed one as it stands once what
    its earlier sessions left in the journal is stored (:func:`conversations.replay.catch_up`).

    Raises what ``open_conversation`` raises.  Cancelled meanwhile, it still waits for the
    database thread and detaches the session it attached, then lets the cancellation through.
    """
    opening = asyncio.ensure_future(
        run_off_shared_thread(
            services.open_conversation, user, conversation_id, client_kind=client_kind, engines=engines
        )
    )
    try:
        opened = await asyncio.shield(opening)
    except asyncio.CancelledError:
        await asyncio.wait([opening])
        if not opening.cancelled() and opening.exception() is None:
            await detach(opening.result(), recorder=None, reason=EndReason.CLIENT_CLOSED)
        raise
    if not opened.resumed:
        return opened
    try:
        return await run_off_shared_thread(catch_up, opened)
    except asyncio.CancelledError:
        await detach(opened, recorder=None, reason=EndReason.CLIENT_CLOSED)
        raise


async def detach(
    opened: services.OpenedConversation, *, recorder: ConversationRecorder | None, reason: str
) -> None:
    """Detach the session of ``opened``, which never opened: through its recorder if it has one
    (journaled first, so stored through a database outage, and the recorder is closed), else
    straight to the database, best effort."""
    conversation_id, session_key = str(opened.conversation.pk), opened.session_key
    if recorder is not None:
        recorder.record(services.end_conversation, conversation_id, reason=reason, session_key=session_key)
        await recorder.aclose()
        return
    try:
        await run_off_shared_thread(
            services.end_conversation, conversation_id, reason=reason, session_key=session_key
        )
    except DatabaseError:
        logger.warning("could not detach a session that never opened", exc_info=True)
