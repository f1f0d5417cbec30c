"""OpenAIChatLLM and a server that closes kept-alive connections (llama.cpp's does after a stream)."""

from __future__ import annotations

from streaming.config import StreamConfig
from streaming.llm import ChatMessage, build_llm
from tests.support.openai_stub_server import StubOpenAIServer

MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi there")]


async def test_a_request_on_a_connection_the_server_closed_is_sent_again():
    async with StubOpenAIServer(token_delay_s=0, drop_reused=True) as stub:
        llm = build_llm(StreamConfig().replace(openai_base_url=stub.base_url, openai_model="stub-model"))
        try:
            replies = [[token async for token in llm.stream(MESSAGES)] for _ in range(3)]
        finally:
            await llm.aclose()
    assert replies == [stub.tokens] * 3
    assert (stub.completed, stub.dropped, len(stub.requests)) == (3, 2, 3)
