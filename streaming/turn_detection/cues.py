"""What a transcript's end says about the turn: a question, a full stop, or words that promise more.

Whisper ends nearly every fragment with a full stop ("And so my fellow Americans."), so
a full stop alone proves little; a comma, a dash or a last word such as "and" or "the"
shows that more is coming, and a question mark that a question was asked.
"""

from __future__ import annotations

import re
from enum import StrEnum


class TextCue(StrEnum):
    QUESTION = "question"
    TERMINAL = "terminal"
    CONTINUATION = "continuation"
    NONE = "none"


CONTINUATION_WORDS = frozenset(
    """
    and but or nor because although though whereas unless if whether than so
    the a an my your our their of to for with from into onto at by um uh er erm
    """.split()
)
"""Last words after which an English statement is rarely over: conjunctions, articles,
possessives, prepositions and fillers.  Words that often close a sentence ("it is",
"I do", "go on") are left out; a question mark outranks the list ("Who is it for?")."""

_OPEN_ENDINGS = (",", ";", ":", "-", "\u2013", "\u2014", "...", "\u2026")
_LAST_WORD = re.compile(r"([A-Za-z']+)\W*$")


def text_cue(text: str) -> TextCue:
    """The cue at the end of ``text`` (a transcript); :attr:`TextCue.NONE` when it says nothing."""
    text = text.strip()
    if not text:
        return TextCue.NONE
    if text.endswith(_OPEN_ENDINGS):
        return TextCue.CONTINUATION
    if text.endswith("?"):
        return TextCue.QUESTION
    match = _LAST_WORD.search(text)
    if match and match.group(1).lower() in CONTINUATION_WORDS:
        return TextCue.CONTINUATION
    if text.endswith((".", "!")):
        return TextCue.TERMINAL
    return TextCue.NONE
