"""bench.llm_turns against the loopback OpenAI stub: the product's engine, memory and report."""

from __future__ import annotations

from bench.llm_turns import QUESTIONS, play, report, style_problems
from streaming.config import StreamConfig
from tests.support.openai_stub_server import StubOpenAIServer


async def test_three_turns_are_asked_with_memory_and_reported():
    async with StubOpenAIServer(tokens=["Canberra", " is", " the", " capital", "."], token_delay_s=0) as stub:
        config = StreamConfig().replace(openai_base_url=stub.base_url, openai_model="stub-model")
        turns = await play(config, QUESTIONS[:3])

    assert [t.answer for t in turns] == ["Canberra is the capital."] * 3
    assert all(t.first_token_ms is not None and t.tokens == 5 and not t.error for t in turns)
    third = stub.requests[2].body["messages"]
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert third[0]["content"] == config.system_prompt
    assert [m["content"] for m in third[1::2]] == list(QUESTIONS[:3])
    lines = report(turns)
    assert lines[1] == f"    Q: {QUESTIONS[0]}" and lines[2] == "    A: Canberra is the capital."
    assert lines[-4].startswith("first token: p50 ") and lines[-4].endswith("(3 of 3 turns)")
    assert lines[-1] == (
        "spoken style: 0 over three sentences, 0 repeats itself, 0 markdown or list, 0 emoji; 0 errors"
    )


def test_style_problems_name_what_would_sound_wrong_aloud():
    assert style_problems("Sure. It is Canberra! About 460,000 people live there.") == []
    assert style_problems("One. Two. Three. Four.") == ["over three sentences"]
    assert style_problems("So, the answer is 3. So, the answer is 3.") == ["repeats itself"]
    assert style_problems("Try this:\n- rice\n- beans") == ["markdown or list"]
    assert style_problems("It is **Canberra**.") == ["markdown or list"]
    assert style_problems("Goodbye! 👋") == ["emoji"]
