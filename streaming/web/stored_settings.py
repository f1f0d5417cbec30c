"""A resumed conversation's stored settings, given back to its new session.

Only the settings its client chose are given back: the others were the server's, and follow its
configuration now (a new default prompt, adaptive detection switched on).  A conversation stored
before the choices were recorded gives back every setting.  Those given back were valid when they
were stored, but the server may have changed since:
a ``language`` stored under a multilingual model, resumed on an English-only one; a prompt
longer than ``STREAM_MAX_SYSTEM_PROMPT_CHARS`` allows now.  Each setting the server's bounds
still allow is kept — one refused setting does not take the others with it.
"""

from __future__ import annotations

import logging
from typing import Any

from streaming.errors import StreamError
from streaming.session import VoiceSession
from streaming.session_settings import CHOSEN_KEY
from streaming.web import protocol

logger = logging.getLogger(__name__)


def restore_settings(session: VoiceSession, stored: dict[str, Any], log_context: dict[str, Any]) -> None:
    """Configure ``session`` with the settings ``stored`` says its client chose, less each setting
    the server now refuses (logged)."""
    remaining = dict(stored or {})
    chosen = remaining.pop(CHOSEN_KEY, None)
    if chosen is not None:
        remaining = {name: value for name, value in remaining.items() if name in chosen}
    while remaining:
        try:
            session.configure(protocol.parse_settings(remaining))
            return
        except StreamError as exc:
            logger.warning("stored setting refused: %s", exc.message, extra=log_context)
            if getattr(exc, "field", None) not in remaining:  # BadSetting names the one refused
                return
            del remaining[exc.field]
