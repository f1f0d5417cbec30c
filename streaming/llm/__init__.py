"""Language models: the engine interface, the engine choice, and the timeouts around a reply.

Engines stream text tokens from an async generator: :mod:`streaming.llm.openai_compat`
talks to any OpenAI-compatible endpoint, :mod:`streaming.llm.offline` answers without
one.  :func:`stream_reply` adds the token and overall timeouts; closing or cancelling it
closes the engine's generator, and with it the HTTP stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from streaming.config import StreamConfig
from streaming.errors import LLMTimeout


@dataclass(frozen=True)
class ChatMessage:
    """One chat message; ``role`` is "system", "user" or "assistant"."""

    role: str
    content: str


class LLMEngine(Protocol):
    """Streams the assistant's reply to ``messages`` as text tokens."""

    name: str
    offline: bool

    def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Yield reply tokens; raise :class:`LLMError` if the endpoint fails."""
        ...

    def speaking(self, language: str) -> LLMEngine:
        """This engine for a session whose user speaks ``language`` (a Whisper code or ``auto``)."""
        ...


# Imported here, after the interface: the implementations import it.
from streaming.llm.offline import OfflineResponder  # noqa: E402
from streaming.llm.openai_compat import OpenAIChatLLM  # noqa: E402


def build_llm(config: StreamConfig) -> LLMEngine:
    """The OpenAI-compatible engine when an endpoint is configured, else the offline responder."""
    if config.use_openai:
        return OpenAIChatLLM(config)
    return OfflineResponder(language=config.language)


async def stream_reply(
    llm: LLMEngine,
    messages: list[ChatMessage],
    *,
    token_timeout_s: float,
    overall_timeout_s: float,
    first_token_timeout_s: float | None = None,
) -> AsyncIterator[str]:
    """``llm.stream(messages)`` with a timeout for each token and one for the whole reply.

    The first token may take ``first_token_timeout_s`` (default: ``token_timeout_s``):
    before it, the model reads the whole conversation.  Any timeout raises :class:`LLMTimeout`.
    On a timeout, an error, ``aclose()`` or cancellation the engine's generator is closed,
    which closes its HTTP stream.
    Each wait is bounded inside the calling task, so the generator may be driven
    from any task.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + overall_timeout_s
    tokens = aiter(llm.stream(messages))
    count = 0
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LLMTimeout(f"the reply took longer than {overall_timeout_s:g} s")
            limit = token_timeout_s if count or first_token_timeout_s is None else first_token_timeout_s
            timer = asyncio.timeout(min(limit, remaining))
            try:
                async with timer:
                    token = await anext(tokens)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not timer.expired():
                    raise
                if remaining < limit:
                    raise LLMTimeout(f"the reply took longer than {overall_timeout_s:g} s") from None
                which = "first" if count == 0 else "next"
                raise LLMTimeout(f"no {which} token from {llm.name} within {limit:g} s") from None
            count += 1
            yield token
    finally:
        if isinstance(tokens, AsyncGenerator):
            await tokens.aclose()


__all__ = [
    "ChatMessage",
    "LLMEngine",
    "OfflineResponder",
    "OpenAIChatLLM",
    "build_llm",
    "stream_reply",
]
