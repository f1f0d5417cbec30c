"""Conversation memory: what the LLM is shown of the past, within a context limit.

Only completed exchanges are remembered.  The caller commits an exchange once
the reply has finished (memory gating), or — after an interruption — with the
text the user actually heard; a failed or cancelled reply is never committed
as if it had been said in full.
"""

from __future__ import annotations

from collections import deque

from streaming.llm import ChatMessage


class ConversationMemory:
    """The system prompt plus the newest exchanges that fit ``max_turns`` and ``max_chars``."""

    def __init__(
        self,
        system_prompt: str,
        *,
        max_turns: int,
        max_chars: int,
        history: list[tuple[str, str]] | None = None,
    ) -> None:
        if max_turns < 0 or max_chars < 0:
            raise ValueError("max_turns and max_chars must not be negative")
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self.max_chars = max_chars
        self._exchanges: deque[tuple[str, str]] = deque(maxlen=max_turns)
        self._turns = 0
        for user_text, assistant_text in history or ():
            self.commit(user_text, assistant_text)

    @property
    def turns(self) -> int:
        """Exchanges committed so far, including the seeded history."""
        return self._turns

    def messages_for(self, user_text: str) -> list[ChatMessage]:
        """The messages to send for ``user_text``: system, remembered history, the new message.

        History is taken newest first while it fits the character budget, so an
        old, long exchange is dropped before a recent one.
        """
        kept: list[tuple[str, str]] = []
        used = 0
        for user, assistant in reversed(self._exchanges):
            used += len(user) + len(assistant)
            if used > self.max_chars:
                break
            kept.append((user, assistant))
        messages = [ChatMessage("system", self.system_prompt)]
        for user, assistant in reversed(kept):
            messages.append(ChatMessage("user", user))
            if assistant:
                messages.append(ChatMessage("assistant", assistant))
        messages.append(ChatMessage("user", user_text))
        return messages

    def commit(self, user_text: str, assistant_text: str) -> None:
        """Remember a finished exchange; an empty ``assistant_text`` means nothing was heard."""
        self._exchanges.append((user_text.strip(), assistant_text.strip()))
        self._turns += 1
