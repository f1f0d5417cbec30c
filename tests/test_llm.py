"""LLM engines: the OpenAI-compatible client against a real loopback SSE server, and the offline responder."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import datetime

import pytest

from streaming.config import StreamConfig
from streaming.errors import LLMError, LLMTimeout
from streaming.llm import ChatMessage, OfflineResponder, OpenAIChatLLM, build_llm, stream_reply
from streaming.llm.offline import CONNECT_HINT, ENGLISH_ONLY, HELP, INTRODUCTION
from tests.support.openai_stub_server import StubOpenAIServer

MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi there")]


async def collect(
    llm, messages=MESSAGES, *, token_timeout_s=5.0, overall_timeout_s=10.0, first_token_timeout_s=None
):
    """Tokens received before the reply ended, and the error that ended it (or None)."""
    tokens: list[str] = []
    try:
        async for token in stream_reply(
            llm,
            messages,
            token_timeout_s=token_timeout_s,
            overall_timeout_s=overall_timeout_s,
            first_token_timeout_s=first_token_timeout_s,
        ):
            tokens.append(token)
    except (LLMError, LLMTimeout) as exc:
        return tokens, exc
    return tokens, None


@pytest.fixture
async def openai_stub():
    async with StubOpenAIServer() as server:
        yield server


@pytest.fixture
async def connect(openai_stub: StubOpenAIServer):
    """Build an OpenAIChatLLM pointed at the stub server with the given model and settings."""
    engines: list[OpenAIChatLLM] = []

    def make(model: str = "stub-model", **changes) -> OpenAIChatLLM:
        config = StreamConfig().replace(openai_base_url=openai_stub.base_url, openai_model=model, **changes)
        llm = build_llm(config)
        assert isinstance(llm, OpenAIChatLLM)
        engines.append(llm)
        return llm

    yield make
    for llm in engines:
        await llm.aclose()


async def test_openai_streams_tokens_in_order_with_request_settings(connect, openai_stub):
    llm = connect("stub-model", openai_api_key="sk-test-key", openai_max_tokens=42, openai_temperature=0.3)

    tokens, error = await collect(llm)

    assert error is None
    assert tokens == openai_stub.tokens
    assert (llm.name, llm.offline) == ("openai:stub-model", False)
    [request] = openai_stub.requests
    assert request.body["model"] == "stub-model"
    assert request.body["max_tokens"] == 42
    assert request.body["temperature"] == 0.3
    assert request.body["stream"] is True
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert openai_stub.completed == 1
    assert not openai_stub.aborted.is_set()


async def test_openai_without_key_sends_placeholder(connect, openai_stub):
    tokens, error = await collect(connect())
    assert error is None and tokens == openai_stub.tokens
    assert openai_stub.requests[0].headers["authorization"] == "Bearer not-needed"


async def test_slow_tokens_below_the_timeout_arrive_complete(connect, openai_stub):
    openai_stub.token_delay_s = 0.1
    tokens, error = await collect(connect("slow"), token_timeout_s=2.0)
    assert error is None
    assert tokens == openai_stub.tokens


@pytest.mark.parametrize(
    ("model", "status", "expected"),
    [("error-500", 500, "the stub model crashed"), ("error-401", 401, "check OPENAI_API_KEY")],
)
async def test_http_error_becomes_llm_error(connect, model, status, expected):
    tokens, error = await collect(connect(model))

    assert tokens == []
    assert type(error) is LLMError
    assert f"HTTP {status}" in error.message
    assert expected in error.message
    assert error.code == "LLM_ERROR" and error.recoverable
    assert error.__cause__ is None and error.__suppress_context__


async def test_unreachable_endpoint_becomes_llm_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAIChatLLM(StreamConfig().replace(openai_base_url=f"http://127.0.0.1:{port}/v1"))
    try:
        tokens, error = await collect(llm)
    finally:
        await llm.aclose()
    assert tokens == []
    assert type(error) is LLMError
    assert "could not reach" in error.message and "OPENAI_BASE_URL" in error.message


async def test_stream_broken_mid_reply_becomes_llm_error(connect, openai_stub):
    tokens, error = await collect(connect("broken"))
    assert tokens == openai_stub.tokens[:2]
    assert type(error) is LLMError
    assert "broke off" in error.message


async def test_stalled_stream_times_out_and_closes_the_connection(connect, openai_stub):
    tokens, error = await collect(connect("stall"), token_timeout_s=0.3)

    assert tokens == openai_stub.tokens[:2]
    assert isinstance(error, LLMTimeout)
    assert error.code == "LLM_TIMEOUT" and error.recoverable
    assert "no next token" in error.message
    await asyncio.wait_for(openai_stub.aborted.wait(), 1.5)


async def test_no_first_token_times_out(connect, openai_stub):
    openai_stub.stall_after = 0
    tokens, error = await collect(connect("stall"), token_timeout_s=0.3)
    assert tokens == []
    assert isinstance(error, LLMTimeout)
    assert "no first token" in error.message


async def test_the_first_token_may_take_longer_than_the_next_ones(connect, openai_stub):
    openai_stub.first_token_delay_s = 0.6
    tokens, error = await collect(connect("slow"), token_timeout_s=0.3, first_token_timeout_s=2.0)
    assert error is None and tokens == openai_stub.tokens
    tokens, error = await collect(connect("slow"), token_timeout_s=0.3, first_token_timeout_s=0.4)
    assert tokens == [] and isinstance(error, LLMTimeout)
    assert "no first token" in error.message and "0.4 s" in error.message


async def test_overall_timeout_ends_a_reply_that_keeps_streaming(connect, openai_stub):
    openai_stub.tokens = [f" word{i}" for i in range(40)]
    openai_stub.token_delay_s = 0.05

    tokens, error = await collect(connect("slow"), token_timeout_s=2.0, overall_timeout_s=0.5)

    assert isinstance(error, LLMTimeout)
    assert "longer than 0.5 s" in error.message
    assert 0 < len(tokens) < 40
    assert tokens == openai_stub.tokens[: len(tokens)]
    await asyncio.wait_for(openai_stub.aborted.wait(), 1.5)


async def test_cancelling_the_consumer_closes_the_http_stream(connect, openai_stub):
    openai_stub.tokens = [f" word{i}" for i in range(100)]
    received: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for token in stream_reply(connect("slow"), MESSAGES, token_timeout_s=5, overall_timeout_s=30):
            received.append(token)
            if len(received) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await asyncio.wait_for(openai_stub.aborted.wait(), 1.0)
    assert (openai_stub.completed, openai_stub.aborts) == (0, 1)
    assert 3 <= len(received) < 100


async def test_closing_the_reply_early_closes_the_http_stream(connect, openai_stub):
    openai_stub.tokens = [f" word{i}" for i in range(100)]
    reply = stream_reply(connect("slow"), MESSAGES, token_timeout_s=5, overall_timeout_s=30)
    assert await anext(reply) == " word0"
    await reply.aclose()
    await asyncio.wait_for(openai_stub.aborted.wait(), 1.0)
    assert openai_stub.completed == 0


def test_build_llm_chooses_by_configuration():
    offline = build_llm(StreamConfig())
    assert isinstance(offline, OfflineResponder)
    assert (offline.name, offline.offline) == ("offline responder", True)
    assert isinstance(build_llm(StreamConfig().replace(openai_api_key="sk-x")), OpenAIChatLLM)
    assert isinstance(
        build_llm(StreamConfig().replace(openai_base_url="http://127.0.0.1:1/v1")), OpenAIChatLLM
    )


TUESDAY_AFTERNOON = datetime(2025, 3, 4, 15, 5)


def offline() -> OfflineResponder:
    return OfflineResponder(clock=lambda: TUESDAY_AFTERNOON)


async def offline_reply(user_text: str, *, history: list[tuple[str, str]] = ()) -> tuple[list[str], str]:
    messages = [ChatMessage("system", "Be brief.")]
    for user, assistant in history:
        messages += [ChatMessage("user", user), ChatMessage("assistant", assistant)]
    messages.append(ChatMessage("user", user_text))
    tokens, error = await collect(offline(), messages)
    assert error is None
    return tokens, "".join(tokens)


async def test_offline_reply_streams_word_tokens_and_is_deterministic():
    tokens, text = await offline_reply("The garden looks lovely this morning.")
    again, _ = await offline_reply("The garden looks lovely this morning.")

    assert tokens == again
    assert len(tokens) > 5
    assert not tokens[0].startswith(" ")
    assert all(token.startswith(" ") and token.strip() for token in tokens[1:])
    assert text.startswith("You said: The garden looks lovely this morning.")


async def test_offline_first_reply_introduces_itself_once():
    _, first = await offline_reply("The garden looks lovely.")
    _, later = await offline_reply(
        "The garden looks lovely.", history=[("Hello", "Hello! Nice to meet you.")]
    )

    assert first == "You said: The garden looks lovely. " + INTRODUCTION
    assert later == "You said: The garden looks lovely."


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What time is it?", "It's 3:05 PM."),
        ("what's the date today", "Today is Tuesday, March 4, 2025."),
        ("Hello there", "Hello! It's nice to hear from you."),
        ("Thanks a lot", "You're welcome!"),
        ("Okay, goodbye!", "Goodbye, talk to you soon!"),
        ("Why is the sky blue?", "You asked: Why is the sky blue? I can't answer that offline."),
        ("", "Sorry, I didn't catch that."),
    ],
)
async def test_offline_answers(question, answer):
    _, text = await offline_reply(question, history=[("Hi", "Hello!")])
    assert text == answer


async def test_offline_help_says_what_it_can_do_and_that_a_model_can_be_connected():
    _, first = await offline_reply("Help, what can you do?")
    _, later = await offline_reply("help", history=[("Hi", "Hello!")])
    assert first == later == HELP
    assert "time" in later and "date" in later and "repeat" in later
    assert first.count(CONNECT_HINT) == 1


# What a user hears names no setting, library or engine: how to connect a model is on the admin index.
TECHNICAL_WORDS = re.compile(
    r"[A-Z]{2,}_[A-Z_]+|openai|api[ _]key|pyttsx|espeak|whisper|llama|piper|offline responder|server",
    re.IGNORECASE,
)


@pytest.mark.parametrize("question", ["The garden looks lovely.", "help", "who are you?", "what time is it"])
async def test_offline_replies_are_words_for_users(question):
    _, first = await offline_reply(question)
    assert not TECHNICAL_WORDS.search(first), first
    assert CONNECT_HINT in first and len(first.split()) < 40  # it is spoken: short


async def test_offline_first_reply_says_it_speaks_only_english_when_the_language_is_another():
    german = OfflineResponder(clock=lambda: TUESDAY_AFTERNOON, language="de")
    first = [ChatMessage("user", "Heute scheint die Sonne.")]
    tokens, _ = await collect(german, first)
    again, _ = await collect(german, first)
    later, _ = await collect(german, [*first, ChatMessage("assistant", "Hi."), ChatMessage("user", "Danke")])

    assert tokens == again  # deterministic
    assert "".join(tokens) == f"{ENGLISH_ONLY} You said: Heute scheint die Sonne. {INTRODUCTION}"
    assert "".join(later) == "You said: Danke."
    assert not TECHNICAL_WORDS.search("".join(tokens)) and len("".join(tokens).split()) < 40
    for language in ("en", "auto"):
        english, _ = await collect(OfflineResponder(language=language), first)
        assert ENGLISH_ONLY not in "".join(english)
    assert build_llm(StreamConfig().replace(model_whisper="base", language="es")).language == "es"


async def test_offline_long_statement_is_quoted_briefly():
    _, text = await offline_reply(" ".join(f"word{i}" for i in range(30)), history=[("Hi", "Hello!")])
    assert text == "You said: " + " ".join(f"word{i}" for i in range(12)) + "…"


async def test_offline_token_delay_paces_the_stream():
    llm = OfflineResponder(token_delay_s=0.005, clock=lambda: TUESDAY_AFTERNOON)
    tokens, error = await collect(llm, [ChatMessage("user", "what time is it")], token_timeout_s=1)
    assert error is None and "".join(tokens).startswith("It's 3:05 PM.")
