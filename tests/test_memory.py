"""Conversation memory: context limits, the character budget, gating and seeded history."""

from __future__ import annotations

import pytest

from streaming.llm import ChatMessage
from streaming.memory import ConversationMemory


def roles_and_text(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_first_message_is_system_then_user():
    memory = ConversationMemory("Be kind.", max_turns=5, max_chars=1000)
    assert roles_and_text(memory.messages_for("Hello")) == [("system", "Be kind."), ("user", "Hello")]
    assert memory.turns == 0


def test_nothing_is_remembered_until_commit():
    memory = ConversationMemory("S", max_turns=5, max_chars=1000)
    memory.messages_for("first question")
    assert roles_and_text(memory.messages_for("second question")) == [
        ("system", "S"),
        ("user", "second question"),
    ]

    memory.commit("first question", "first answer")

    assert roles_and_text(memory.messages_for("second question")) == [
        ("system", "S"),
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),
    ]
    assert memory.turns == 1


def test_only_the_newest_turns_are_kept():
    memory = ConversationMemory("S", max_turns=2, max_chars=10_000)
    for i in range(5):
        memory.commit(f"q{i}", f"a{i}")

    assert roles_and_text(memory.messages_for("now")) == [
        ("system", "S"),
        ("user", "q4"),
        ("assistant", "a4"),
        ("user", "now"),
    ]
    assert memory.turns == 5


def test_history_is_trimmed_in_steps_so_prompts_keep_their_beginning():
    """Between trims every prompt starts with the previous prompt's history (an LLM's prompt cache hits)."""
    memory = ConversationMemory("S", max_turns=6, max_chars=10_000)
    starts, sizes = [], []
    for i in range(14):
        memory.commit(f"q{i}", f"a{i}")
        history = roles_and_text(memory.messages_for("now"))[1:-1]
        starts.append(history[0][1])
        sizes.append(len(history) // 2)
    assert sizes == [1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6]
    assert starts == ["q0"] * 6 + ["q4"] * 4 + ["q8"] * 4
    chars = ConversationMemory("S", max_turns=100, max_chars=40)
    for i in range(6):
        chars.commit(f"question {i}", "answer")  # 16 characters each
    history = [m.content for m in chars.messages_for("now")[1:-1]]
    assert history == ["question 4", "answer", "question 5", "answer"]


def test_character_budget_drops_oldest_whole_exchanges():
    memory = ConversationMemory("S", max_turns=10, max_chars=30)
    memory.commit("old question " * 3, "old answer")  # 48 characters: over budget on its own
    memory.commit("q1", "a1")  # 4
    memory.commit("twelve chars", "twelve chars")  # 24, and 28 with the one above

    messages = memory.messages_for("now")

    assert roles_and_text(messages) == [
        ("system", "S"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "twelve chars"),
        ("assistant", "twelve chars"),
        ("user", "now"),
    ]
    history = messages[1:-1]
    assert sum(len(m.content) for m in history) <= 30


def test_an_exchange_too_big_for_the_budget_hides_everything_older():
    memory = ConversationMemory("S", max_turns=10, max_chars=20)
    memory.commit("q", "a")
    memory.commit("x" * 15, "y" * 15)
    assert roles_and_text(memory.messages_for("now")) == [("system", "S"), ("user", "now")]


def test_zero_turns_means_no_history():
    memory = ConversationMemory("S", max_turns=0, max_chars=1000)
    memory.commit("q", "a")
    assert roles_and_text(memory.messages_for("now")) == [("system", "S"), ("user", "now")]
    assert memory.turns == 1


def test_interrupted_reply_committed_with_heard_text_and_empty_reply_keeps_user_only():
    memory = ConversationMemory("S", max_turns=5, max_chars=1000)
    memory.commit("tell me a story", "Once upon a")  # the caller passes what was heard
    memory.commit("  stop  ", "")  # nothing of the reply was heard

    assert roles_and_text(memory.messages_for("go on")) == [
        ("system", "S"),
        ("user", "tell me a story"),
        ("assistant", "Once upon a"),
        ("user", "stop"),
        ("user", "go on"),
    ]


def test_history_seeds_a_resumed_conversation_within_limits():
    history = [(f"q{i}", f"a{i}") for i in range(4)]
    memory = ConversationMemory("S", max_turns=3, max_chars=1000, history=history)

    assert memory.turns == 4
    assert roles_and_text(memory.messages_for("next"))[1:3] == [("user", "q1"), ("assistant", "a1")]
    memory.commit("next", "reply")
    assert roles_and_text(memory.messages_for("again"))[-3:] == [
        ("user", "next"),
        ("assistant", "reply"),
        ("user", "again"),
    ]


def test_negative_limits_are_rejected():
    with pytest.raises(ValueError):
        ConversationMemory("S", max_turns=-1, max_chars=10)
