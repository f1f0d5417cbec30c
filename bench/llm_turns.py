"""``python -m bench.llm_turns``: a 20-turn spoken conversation with a real LLM, as the product holds it.

The questions are typical of a voice assistant: facts that do not depend on the date,
small talk, and follow-ups that only make sense with memory ("how many people live
there?").  Each goes through the product's own LLM engine (:func:`streaming.llm.build_llm`
and :func:`streaming.llm.stream_reply` with the configured timeouts) with its system
prompt and :class:`streaming.memory.ConversationMemory`, so the history is trimmed as in
a session.  It prints every question and answer, then the time to the first token
(p50/p95), the decoding rate and the reply length, and counts replies that would sound
wrong aloud (more than three sentences, a sentence said twice, markdown or list marks, emoji).

The server is ``--base-url``, else ``OPENAI_BASE_URL``, else ``make llm-server`` on
:8080.  ``STREAM_SYSTEM_PROMPT`` and ``STREAM_MEMORY_*`` apply, so wordings can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.endpoint import find_endpoint
from bench.stats import distribution, median
from streaming.config import StreamConfig
from streaming.errors import LLMError, LLMTimeout
from streaming.llm import LLMEngine, build_llm, stream_reply
from streaming.memory import ConversationMemory

# Turns 3, 6, 8, 9, 14, 16 and 18 need the memory; 18 refers to turn 13, still within
# the default STREAM_MEMORY_TURNS after the trim (turn 1 no longer is by then).
QUESTIONS = (
    "Hi there, my name is Maya. How are you today?",
    "What's the capital of Australia?",
    "How many people live there, roughly?",
    "Why is the sky blue?",
    "Can you suggest a quick vegetarian dinner idea?",
    "How long would that take to cook?",
    "How many legs does a spider have?",
    "And how many does an insect have?",
    "Do you remember my name?",
    "Tell me a short joke.",
    "What's a good way to fall asleep faster?",
    "What's the boiling point of water in Fahrenheit?",
    "I'm thinking of learning the guitar. Any tips for a beginner?",
    "How long should I practise each day?",
    "Who wrote Romeo and Juliet?",
    "What else did he write?",
    "What's the difference between weather and climate?",
    "Which instrument did I say I wanted to learn?",
    "Can you recommend a good book for a long flight?",
    "Thanks, that's all for now. Goodbye!",
)

_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_MARKDOWN = re.compile(r"[*#`_|]|^\s*(?:[-•]|\d+[.)])\s", re.MULTILINE)
_EMOJI = re.compile("[\u2600-\u27bf\U0001f300-\U0001faff]")


@dataclass(frozen=True)
class Turn:
    """One exchange: the answer as streamed, when its first token came and how many followed."""

    question: str
    answer: str
    first_token_ms: float | None
    tokens: int
    decode_s: float
    error: str = ""

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens after the first per second of streaming (llama.cpp sends one token per chunk)."""
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else None

    @property
    def words(self) -> int:
        return len(self.answer.split())


def style_problems(answer: str) -> list[str]:
    """What would sound wrong when ``answer`` is spoken: too long, a loop, markdown or lists, emoji."""
    problems = []
    sentences = [" ".join(s.lower().split()) for s in _SENTENCE_END.split(answer) if s.strip()]
    if len(sentences) > 3:
        problems.append("over three sentences")
    if len(set(sentences)) < len(sentences):
        problems.append("repeats itself")
    if _MARKDOWN.search(answer):
        problems.append("markdown or list")
    if _EMOJI.search(answer):
        problems.append("emoji")
    return problems


async def play(config: StreamConfig, questions: Sequence[str]) -> list[Turn]:
    """Ask ``questions`` in order through the product's engine, remembering each finished exchange."""
    llm = build_llm(config)
    memory = ConversationMemory(
        config.system_prompt, max_turns=config.memory_turns, max_chars=config.memory_max_chars
    )
    turns = []
    try:
        for question in questions:
            turns.append(await _ask(llm, config, memory, question))
    finally:
        aclose = getattr(llm, "aclose", None)
        if aclose is not None:
            await aclose()
    return turns


async def _ask(llm: LLMEngine, config: StreamConfig, memory: ConversationMemory, question: str) -> Turn:
    parts: list[str] = []
    start = time.perf_counter()
    first = last = start
    stream = stream_reply(
        llm,
        memory.messages_for(question),
        token_timeout_s=config.llm_token_timeout_s,
        first_token_timeout_s=config.llm_first_token_timeout_s,
        overall_timeout_s=config.llm_timeout_s,
    )
    try:
        async for token in stream:
            last = time.perf_counter()
            if not parts:
                first = last
            parts.append(token)
    except (LLMError, LLMTimeout) as exc:
        # As in a session: a failed reply is not remembered as if it had been said.
        answer = "".join(parts).strip()
        return Turn(
            question, answer, _ms(start, first) if parts else None, len(parts), last - first, str(exc)
        )
    answer = "".join(parts).strip()
    memory.commit(question, answer)
    return Turn(question, answer, _ms(start, first) if parts else None, len(parts), last - first)


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 1)


def report(turns: Sequence[Turn]) -> list[str]:
    """Every exchange with its timings, then the summary lines."""
    lines = []
    for number, turn in enumerate(turns, 1):
        rate = f"{turn.tokens_per_s:.1f} tok/s" if turn.tokens_per_s else "- tok/s"
        first = f"{turn.first_token_ms:.0f} ms" if turn.first_token_ms is not None else "no token"
        flags = ", ".join(style_problems(turn.answer) + ([f"error: {turn.error}"] if turn.error else []))
        flags = f"  [{flags}]" if flags else ""
        lines.append(f"{number:2}  first token {first}, {rate}, {turn.words} words{flags}")
        lines.append(f"    Q: {turn.question}")
        lines.append(f"    A: {' '.join(turn.answer.split())}")
    first_token = distribution(t.first_token_ms for t in turns)
    problems = [p for t in turns for p in style_problems(t.answer)]
    words = [t.words for t in turns]
    lines += [
        "",
        f"first token: p50 {first_token['p50']} ms, p95 {first_token['p95']} ms, max {first_token['max']} ms "
        f"({first_token['count']} of {len(turns)} turns)",
        f"decoding: median {median(t.tokens_per_s for t in turns)} tokens/s",
        f"reply length: median {median(words)} words, max {max(words, default=0)}",
        "spoken style: "
        + ", ".join(
            f"{problems.count(p)} {p}"
            for p in ("over three sentences", "repeats itself", "markdown or list", "emoji")
        )
        + f"; {sum(1 for t in turns if t.error)} errors",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.llm_turns", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url", help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL, then :8080)"
    )
    parser.add_argument(
        "--turns",
        type=int,
        default=len(QUESTIONS),
        choices=range(1, len(QUESTIONS) + 1),
        metavar=f"1-{len(QUESTIONS)}",
        help="how many of the questions to ask, in order",
    )
    args = parser.parse_args(argv)
    endpoint, how = find_endpoint(args.base_url, None)
    if endpoint is None:
        raise SystemExit(f"{how}; start one with `make llm-server` or pass --base-url")
    config = StreamConfig.from_env(os.environ).replace(
        openai_base_url=endpoint.base_url, openai_model=endpoint.model, openai_api_key=endpoint.api_key
    )
    print(f"LLM: {how}")
    print(f"system prompt: {config.system_prompt}\n")
    turns = asyncio.run(play(config, QUESTIONS[: args.turns]))
    print("\n".join(report(turns)))


if __name__ == "__main__":
    main()
