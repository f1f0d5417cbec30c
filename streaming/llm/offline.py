"""The offline responder: a deterministic stand-in for a language model, for demos and tests."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from streaming.llm import ChatMessage, LLMEngine

# Spoken to users: plain words, no setting or library names. How an administrator connects a
# model is on the admin index (conversations/templatetags/admin_guide.py), not spoken.
CONNECT_HINT = "Your administrator can connect a full language model."
INTRODUCTION = (
    "I'm a simple built-in assistant: I can tell you the time and the date, and repeat what I hear. "
    + CONNECT_HINT
)
HELP = INTRODUCTION
GREETING = "Hello! It's nice to hear from you."
ENGLISH_ONLY = "I only speak English."
_ECHO_WORDS = 12


class OfflineResponder(LLMEngine):
    """A deterministic, offline stand-in for an LLM, for demos and tests.

    It answers the time, the date and "help", returns greetings, thanks and
    goodbyes, and otherwise repeats back what it heard.  Its first reply in a
    conversation (no assistant message yet) says what it is and that an
    administrator can connect a real model; when ``language`` (``STREAM_LANGUAGE``) is
    another than English, not ``auto``, that reply begins by saying it speaks only English
    (it always answers in English).  The same messages at the same clock time give the
    same tokens.
    """

    name = "offline responder"
    offline = True

    def __init__(
        self,
        *,
        token_delay_s: float = 0.0,
        clock: Callable[[], datetime] = datetime.now,
        language: str = "en",
    ) -> None:
        self.token_delay_s = token_delay_s
        self._clock = clock
        self.language = language

    def speaking(self, language: str) -> OfflineResponder:
        """A responder that says it speaks only English to a session in another ``language``."""
        if language == self.language:
            return self
        return OfflineResponder(token_delay_s=self.token_delay_s, clock=self._clock, language=language)

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
        if first and self.language not in ("en", "auto"):
            answer = ENGLISH_ONLY + " " + answer
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
