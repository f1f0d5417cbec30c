"""The OpenAI-compatible engine: any chat endpoint that streams (OpenAI, llama.cpp, vLLM, Ollama).

Closing or cancelling :meth:`OpenAIChatLLM.stream` closes the HTTP stream at once,
so an interrupted reply stops costing tokens.  openai and httpx2 exceptions are
converted to :class:`LLMError` or :class:`LLMTimeout` here and never leave this module.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import httpx2
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from streaming.errors import LLMError, LLMTimeout
from streaming.llm import ChatMessage, LLMEngine

if TYPE_CHECKING:
    from streaming.config import StreamConfig


class OpenAIChatLLM(LLMEngine):
    """Any OpenAI-compatible chat endpoint (OpenAI, llama.cpp server, vLLM, Ollama) with ``stream=True``.

    One engine is shared by every session of the process, so it keeps one
    client per event loop: pooled connections belong to the loop that opened them.
    """

    offline = False

    def __init__(self, config: StreamConfig) -> None:
        self.name = f"openai:{config.openai_model}"
        self._config = config
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=self._config.openai_api_key or "not-needed",
                base_url=self._config.openai_base_url or None,
                max_retries=0,
                timeout=self._config.llm_timeout_s,
            )
            self._clients[loop] = client
        return client

    def speaking(self, language: str) -> OpenAIChatLLM:
        """The same engine: the model reads the language from what the user says."""
        return self

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        client = self._client()

        async def create() -> openai.AsyncStream[ChatCompletionChunk]:
            return await client.chat.completions.create(
                model=self._config.openai_model,
                messages=[_as_openai_message(m) for m in messages],
                max_tokens=self._config.openai_max_tokens,
                temperature=self._config.openai_temperature,
                stream=True,
            )

        try:
            try:
                stream = await create()
            except openai.APIConnectionError as exc:
                if not isinstance(exc.__cause__, httpx2.RemoteProtocolError):
                    raise
                # The server closed a kept-alive connection just as it was reused (llama.cpp's server
                # closes each one after a stream): the request never reached the model, so send it
                # once more, on a new connection.
                stream = await create()
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise _as_llm_error(exc, str(client.base_url), streaming=False) from None
        try:
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
        except (openai.OpenAIError, httpx2.HTTPError, json.JSONDecodeError) as exc:
            raise _as_llm_error(exc, str(client.base_url), streaming=True) from None
        finally:
            await stream.close()

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()


def _as_openai_message(message: ChatMessage) -> ChatCompletionMessageParam:
    return cast("ChatCompletionMessageParam", {"role": message.role, "content": message.content})


def _as_llm_error(exc: Exception, base_url: str, *, streaming: bool) -> LLMError | LLMTimeout:
    """Our error for an openai/httpx2 exception, with a message that says what to check.

    ``streaming`` tells a connection lost mid-reply from an endpoint never reached.
    """
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return LLMTimeout(f"the LLM endpoint at {base_url} timed out")
    if isinstance(exc, openai.APIStatusError):
        hint = {401: " (check OPENAI_API_KEY)", 403: " (check OPENAI_API_KEY)", 404: " (check OPENAI_MODEL)"}
        detail = _short(exc.message)
        return LLMError(
            f"the LLM endpoint answered HTTP {exc.status_code}: {detail}{hint.get(exc.status_code, '')}"
        )
    if isinstance(exc, openai.APIConnectionError | httpx2.HTTPError):
        cause = _short(str(exc.__cause__ or exc))
        if streaming:
            return LLMError(f"the LLM stream from {base_url} broke off ({cause})")
        return LLMError(f"could not reach the LLM endpoint at {base_url} ({cause}); check OPENAI_BASE_URL")
    if isinstance(exc, json.JSONDecodeError):
        return LLMError(f"the LLM endpoint at {base_url} sent a malformed stream chunk")
    return LLMError(f"the LLM endpoint reported an error: {_short(str(exc))}")


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
