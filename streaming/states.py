"""Checked state machines: each one is an Enum plus a table of the moves it allows.

The VAD, a reply and a session each keep their state in an Enum and move it only
through :meth:`Transitions.check`, so a move the table does not list fails at once
with both states named instead of leaving a flag quietly wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=Enum)


class IllegalTransition(RuntimeError):
    """A state machine was asked for a move its table forbids: always a bug in the caller."""


class Transitions(Generic[S]):
    """The moves a state machine named ``name`` allows: ``table[state]`` lists where ``state`` may go."""

    def __init__(self, name: str, table: Mapping[S, Iterable[S]]) -> None:
        self.name = name
        self._table = {state: frozenset(targets) for state, targets in table.items()}

    def check(self, current: S, new: S) -> S:
        """``new`` if ``current`` may move to it; raises :class:`IllegalTransition` otherwise."""
        if new not in self._table[current]:
            raise IllegalTransition(f"illegal {self.name} transition {current.name} -> {new.name}")
        return new

    def is_final(self, state: S) -> bool:
        """True for a state nothing can leave."""
        return not self._table[state]
