"""Language model engines: an OpenAI-compatible streaming client and an offline responder.

Both stream text tokens from an async generator.  :func:`stream_reply` adds the
token and overall timeouts; closing or cancelling any of these generators
closes the HTTP stream at once, so an interrupted reply stops costing tokens.
openai and httpx2 exceptions are converted to :class:`LLMError` here and never
leave this module.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from streaming.config import StreamConfig
from streaming.errors import LLMError, LLMTimeout


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

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        client = self._client()
        try:
            stream = await client.chat.completions.create(
                model=self._config.openai_model,
                messages=[_as_openai_message(m) for m in messages],
                max_tokens=self._config.openai_max_tokens,
                temperature=self._config.openai_temperature,
                stream=True,
            )
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


CONNECT_HINT = "set OPENAI_BASE_URL or OPENAI_API_KEY on the server"
INTRODUCTION = f"I'm the offline responder; to talk with a real language model, {CONNECT_HINT}."
HELP = (
    "I'm the offline responder: I can tell you the time or the date, and repeat what you say. "
    f"To talk with a real language model, {CONNECT_HINT}."
)
GREETING = "Hello! It's nice to hear from you."
_ECHO_WORDS = 12


class OfflineResponder(LLMEngine):
    """A deterministic, offline stand-in for an LLM, for demos and tests.

    It answers the time, the date and "help", returns greetings, thanks and
    goodbyes, and otherwise repeats back what it heard.  Its first reply in a
    conversation (no assistant message yet) says what it is and how to connect
    a real model.  The same messages at the same clock time give the same tokens.
    """

    name = "offline responder"
    offline = True

    def __init__(self, *, token_delay_s: float = 0.0, clock: Callable[[], datetime] = datetime.now) -> None:
        self.token_delay_s = token_delay_s
        self._clock = clock

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        words = self.reply(messages).split(" ")
        for index, word in enumerate(words):
            # A real model yields control between tokens too, so cancellation lands mid-reply.
            await asyncio.sleep(self.token_delay_s)
            yield word if index == 0 else " " + word

    def reply(self, messages: list[ChatMessage]) -> str:
        """The whole reply to the last user message in ``messages``."""
        user_text = next((m.content for m in reversed(messages) if m.role == "user"), "")
        answer = self._answer(" ".join(user_text.split()))
        first = not any(m.role == "assistant" for m in messages)
        if first and CONNECT_HINT not in answer:
            answer += " " + INTRODUCTION
        return answer

    def _answer(self, text: str) -> str:
        said = " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())
        if not said:
            return "Sorry, I didn't catch that."
        for pattern, answer in self._rules():
            if re.search(pattern, said):
                return answer()
        return _echo(text)

    def _rules(self) -> list[tuple[str, Callable[[], str]]]:
        """(pattern, answer) pairs, most specific first; the first match answers."""
        return [
            (
                r"\bwhat time\b|\btime is it\b|\b(tell me|know|have|is) the time\b|\bcurrent time\b",
                self._time,
            ),
            (r"\b(the|today's|what's|what is) date\b|\bwhat day\b|\bwhat is today\b", self._date),
            (r"\bhelp\b|\bwhat can you do\b|\bwho are you\b", lambda: HELP),
            (r"\bthank(s| you)\b|\bcheers\b", lambda: "You're welcome!"),
            (r"\b(good)?bye\b|\bsee you\b|\bgood night\b", lambda: "Goodbye, talk to you soon!"),
            (r"^(hello|hi|hey|greetings|good (morning|afternoon|evening))\b", lambda: GREETING),
        ]

    def _time(self) -> str:
        now = self._clock()
        return f"It's {now.hour % 12 or 12}:{now:%M %p}."

    def _date(self) -> str:
        now = self._clock()
        return f"Today is {now:%A, %B} {now.day}, {now.year}."


def _echo(text: str) -> str:
    """Acknowledge what was said with a short quote of it."""
    question = text.rstrip().endswith("?")
    words = text.rstrip(" .!?…").split()
    quote = " ".join(words[:_ECHO_WORDS])
    if len(words) > _ECHO_WORDS:
        quote += "…"
    if question:
        return f"You asked: {quote}? I can't answer that offline."
    return f"You said: {quote}{'' if quote.endswith('…') else '.'}"


def build_llm(config: StreamConfig) -> LLMEngine:
    """The OpenAI-compatible engine when an endpoint is configured, else the offline responder."""
    if config.use_openai:
        return OpenAIChatLLM(config)
    return OfflineResponder()


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
