"""Speculative replies: the LLM starts on the speculative final while the turn is still undecided.

At a pause the listener already has the speculative final's text.  If the reply stage is
idle it starts the LLM on it at once, and a :class:`Speculation` holds the tokens: nothing
is emitted, synthesized, remembered or stored.  When the turn is committed with the same
text and the same conversation so far, the reply adopts it: the held tokens come out at
once and the rest streams live, so a slow model's first-token time overlaps the pause.
When the user speaks on, or the final or the conversation differs, it is discarded and
leaves no trace outside this object.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streaming.aio import cancel_and_wait
from streaming.llm import ChatMessage


class Speculation:
    """One held LLM stream for turn ``turn_id``, asked ``messages`` (ending with the user's text)."""

    def __init__(self, turn_id: str, messages: list[ChatMessage], stream: AsyncIterator[str]) -> None:
        self.turn_id = turn_id
        self.messages = messages
        self._tokens: list[str] = []
        self._error: Exception | None = None
        self._done = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pull(stream), name="speculative-reply")

    @property
    def user_text(self) -> str:
        return self.messages[-1].content

    def matches(self, turn_id: str, messages: list[ChatMessage]) -> bool:
        """Whether this speculation answers exactly what the turn now asks."""
        return turn_id == self.turn_id and messages == self.messages

    async def tokens(self) -> AsyncIterator[str]:
        """The held tokens at once, then the rest as the LLM sends them; its error, if it failed."""
        sent = 0
        while True:
            while sent < len(self._tokens):
                sent += 1
                yield self._tokens[sent - 1]
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            self._changed.clear()
            await self._changed.wait()

    async def discard(self) -> None:
        """Stop the LLM stream (closing its HTTP request) and forget everything it said."""
        await cancel_and_wait(self._task)
        self._tokens.clear()

    async def _pull(self, stream: AsyncIterator[str]) -> None:
        try:
            async for token in stream:
                if token:
                    self._tokens.append(token)
                    self._changed.set()
        except Exception as exc:  # raised to the reply that adopts it, as the LLM's own stream would
            self._error = exc
        finally:
            self._done = True
            self._changed.set()
            await stream.aclose()
