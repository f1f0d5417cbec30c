"""Conversation memory: what the LLM is shown of the past, within a context limit.

Only exchanges the user lived through are remembered.  The caller commits an
exchange once the reply has finished (memory gating), or — after an
interruption — with the text the user actually heard (possibly none); a failed
or cancelled reply is never committed as if it had been said in full.

When history outgrows its limits, the oldest exchanges are dropped in one go,
down to half the limits, not one per turn: the prompts of the following turns
then begin with the same messages, which LLM servers cache (llama.cpp reuses the
evaluated prefix, OpenAI discounts a cached one).  Dropping one exchange per
turn changes the prompt's start every time and makes a local model on a CPU
re-read the whole conversation before each reply (7-9 s for 1,800 tokens here).
"""

from __future__ import annotations

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
        # A resumed conversation starts with as much of its history as the limits allow.
        self._exchanges = [(user.strip(), assistant.strip()) for user, assistant in history or ()]
        self._turns = len(self._exchanges)
        self._exchanges = self._newest_within(max_turns, max_chars)

    @property
    def turns(self) -> int:
        """Exchanges committed so far, including the seeded history."""
        return self._turns

    def messages_for(self, user_text: str) -> list[ChatMessage]:
        """The messages to send for ``user_text``: system, remembered history, the new message."""
        messages = [ChatMessage("system", self.system_prompt)]
        for user, assistant in self._exchanges:
            messages.append(ChatMessage("user", user))
            if assistant:
                messages.append(ChatMessage("assistant", assistant))
        messages.append(ChatMessage("user", user_text))
        return messages

    def commit(self, user_text: str, assistant_text: str) -> None:
        """Remember a finished exchange; an empty ``assistant_text`` means nothing was heard."""
        self._exchanges.append((user_text.strip(), assistant_text.strip()))
        self._turns += 1
        used = sum(len(user) + len(assistant) for user, assistant in self._exchanges)
        if len(self._exchanges) > self.max_turns or used > self.max_chars:
            self._exchanges = self._newest_within(self.max_turns // 2, self.max_chars // 2)
            if not self._exchanges and self.max_turns:
                self._exchanges = self._newest_within(1, self.max_chars)

    def _newest_within(self, turns: int, chars: int) -> list[tuple[str, str]]:
        """The newest exchanges, oldest first, up to ``turns`` of them and ``chars`` characters."""
        kept: list[tuple[str, str]] = []
        used = 0
        for user, assistant in reversed(self._exchanges):
            used += len(user) + len(assistant)
            if len(kept) == turns or used > chars:
                break
            kept.append((user, assistant))
        return kept[::-1]
