"""Speculative replies: the LLM starts on the speculative final while the turn is still undecided.

At a pause the listener already has the speculative final's text.  If the reply stage is
idle it starts the LLM on it at once, and a :class:`Speculation` holds the tokens and the
audio of the reply's first phrase: nothing is emitted, remembered or stored.  When the
turn is committed with the same text and the same conversation so far, the reply adopts
it: the held tokens come out at once, the first phrase's audio is already made, and the
rest streams live, so a slow model's first-token time and the first synthesis overlap the
pause.  When the user speaks on, or the final, the conversation or the voice differs, it
is discarded and leaves no trace outside this object.  Once adopted, the reply stage
discards it when the reply ends, however it ended: its LLM stream never outlives the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streaming.aio import cancel_and_wait, discard_result
from streaming.llm import ChatMessage
from streaming.phrases import PhraseAggregator
from streaming.tts import TTSEngine, hold_voice, release_voice


class Speculation:
    """One held LLM stream for turn ``turn_id``, asked ``messages`` (ending with the user's text).

    With ``tts``, the reply's first phrase (cut by ``phrases`` as the reply will cut it) is
    synthesized as soon as it is complete: :attr:`first_phrase` holds its text and audio.
    The voice is held (not unloaded by a settings change) until :meth:`discard`.
    """

    def __init__(
        self,
        turn_id: str,
        messages: list[ChatMessage],
        stream: AsyncIterator[str],
        *,
        tts: TTSEngine | None = None,
        phrases: PhraseAggregator | None = None,
    ) -> None:
        self.turn_id = turn_id
        self.messages = messages
        self.first_phrase: tuple[str, asyncio.Task[bytes]] | None = None
        """The first phrase's text and its synthesis, once the tokens complete it."""
        self._tts = tts
        if tts is not None:
            hold_voice(tts)
        self._phrases = phrases if tts is not None else None
        self._tokens: list[str] = []
        self._error: Exception | None = None
        self._done = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pull(stream), name="speculative-reply")

    @property
    def user_text(self) -> str:
        return self.messages[-1].content

    def matches(self, turn_id: str, messages: list[ChatMessage], tts: TTSEngine) -> bool:
        """Whether this speculation answers exactly what the turn now asks, in the reply's voice."""
        return turn_id == self.turn_id and messages == self.messages and tts is self._tts

    def adopt(self) -> tuple[AsyncIterator[str], tuple[str, asyncio.Task[bytes]] | None]:
        """Hand the held reply to the reply answering the turn: its tokens, and the first
        phrase's synthesis if one was started.  From now on the reply cuts and synthesizes
        its phrases itself, so a first phrase completed later is not synthesized here too."""
        self._phrases = None
        return self.tokens(), self.first_phrase

    async def tokens(self) -> AsyncIterator[str]:
        """The held tokens at once, then the rest as the LLM sends them; its error, if it failed."""
        sent = 0
        while True:
            while sent < len(self._tokens):
                sent += 1
                yield self._tokens[sent - 1]
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            self._changed.clear()
            await self._changed.wait()

    async def discard(self) -> None:
        """Stop the LLM stream (closing its HTTP request) and the synthesis, let go of the voice;
        forget everything.  Safe to call again."""
        self._phrases = None
        await cancel_and_wait(self._task)
        if self.first_phrase is not None:
            await discard_result(self.first_phrase[1])
            self.first_phrase = None
        self._tokens.clear()
        tts, self._tts = self._tts, None
        if tts is not None:
            release_voice(tts)

    async def _pull(self, stream: AsyncIterator[str]) -> None:
        try:
            async for token in stream:
                if token:
                    self._tokens.append(token)
                    self._changed.set()
                    if self._phrases is not None:
                        self._hold_first(self._phrases.push(token))
        except Exception as exc:  # raised to the reply that adopts it, as the LLM's own stream would
            self._error = exc
        finally:
            if self._phrases is not None and self._error is None:
                self._hold_first([self._phrases.flush() or ""])
            self._done = True
            self._changed.set()
            await stream.aclose()

    def _hold_first(self, phrases: list[str]) -> None:
        """Start synthesizing the reply's first phrase once there is one; later ones wait for the turn.

        It waits for a worker as a second phrase would (``seq=1``): behind the first phrase of
        every reply being spoken, since this one may never be.
        """
        if phrases and phrases[0] and self._tts is not None:
            text = phrases[0]
            self.first_phrase = (text, asyncio.create_task(self._tts.synthesize(text, seq=1)))
            self._phrases = None
