"""Turns a stream of LLM tokens into speakable phrases for TTS.

Synthesizing phrase by phrase lets the first audio play while the model is
still writing.  A phrase ends at a sentence end, at a clause break once it is
long enough to sound natural on its own, or at the last word boundary that
keeps it within the maximum length.  Tokens split words arbitrarily ("Hel",
"lo wor", "ld."), so a boundary is decided only once the character after it
has arrived; a word is never cut in two.
"""

from __future__ import annotations

SENTENCE_ENDS = frozenset(".!?…")
CLAUSE_BREAKS = frozenset(",;:")
DASHES = frozenset("—–")
CLOSERS = frozenset("\"')]}”’»")
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "a.m", "p.m",
        "approx", "fig", "inc", "ltd", "co", "corp", "dept", "u.s", "u.k", "jan", "feb", "mar",
        "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip


class PhraseAggregator:
    """Buffers tokens and hands out phrases as soon as their end is certain.

    A reply's first phrase may end at a shorter clause ("You said:", "Of course,")
    than later ones: the listener hears its audio sooner, and the next phrase is
    synthesized while it plays.
    """

    def __init__(self, max_length: int, min_clause_length: int = 20, first_clause_length: int = 8) -> None:
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.max_length = max_length
        self.min_clause_length = min_clause_length
        self.first_clause_length = first_clause_length
        self._buffer = ""
        self._first = True

    def push(self, token: str) -> list[str]:
        """Add ``token``; return the phrases it completed, in order (often none)."""
        self._buffer += token
        phrases = []
        while (cut := self._next_cut()) is not None:
            phrase, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if _speakable(phrase):
                phrases.append(phrase)
                self._first = False
        return phrases

    def flush(self) -> str | None:
        """The rest of the reply once the stream has ended; the aggregator is then empty."""
        rest, self._buffer, self._first = self._buffer.strip(), "", True
        return rest if _speakable(rest) else None

    def _next_cut(self) -> int | None:
        """Index after which the buffer's first phrase ends, or None while undecided."""
        self._buffer = self._buffer.lstrip()
        text = self._buffer
        limit = min(len(text), self.max_length + 1)
        for i in range(limit):
            cut = self._boundary_at(text, i)
            if cut is not None and cut <= self.max_length:
                return cut
        if len(text) <= self.max_length:
            return None
        return _word_boundary_cut(text, self.max_length)

    def _boundary_at(self, text: str, i: int) -> int | None:
        """The cut for a sentence end, clause break or line break at ``text[i]``, if it is one."""
        char = text[i]
        clause_length = self.first_clause_length if self._first else self.min_clause_length
        if char == "\n":
            return i + 1
        if char in DASHES:
            return i + 1 if i + 1 >= clause_length else None
        if char in SENTENCE_ENDS:
            end = i + 1
            while end < len(text) and (text[end] in SENTENCE_ENDS or text[end] in CLOSERS):
                end += 1
            if end >= len(text) or not text[end].isspace():
                return None
            if char == "." and _is_abbreviation(text, i):
                return None
            return end
        if char in CLAUSE_BREAKS and i + 1 >= clause_length:
            if i + 1 < len(text) and text[i + 1].isspace():
                return i + 1
        return None


def _word_boundary_cut(text: str, max_length: int) -> int | None:
    """The last word boundary within ``max_length``, or the end of an over-long first word."""
    for i in range(max_length, 0, -1):
        if text[i].isspace():
            return i
    for i in range(max_length + 1, len(text)):
        if text[i].isspace():
            return i
    return None


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the word ending at ``text[dot] == '.'`` is an abbreviation or an initial."""
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot].lstrip("\"'([{“‘«")
    if len(word) == 1 and word.isupper():
        return True
    return word.lower() in ABBREVIATIONS


def _speakable(phrase: str) -> bool:
    """A phrase with no letter or digit (a stray "..." or "—") has nothing to say."""
    return any(c.isalnum() for c in phrase)
