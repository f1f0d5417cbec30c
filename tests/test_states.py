"""Transitions: the one state-machine style — legal moves, illegal ones named, final states."""

from __future__ import annotations

import enum

import pytest

from streaming import reply_handle, session, vad
from streaming.reply import ReplyState
from streaming.session import SessionState
from streaming.states import IllegalTransition, Transitions
from streaming.vad import VadState


class Door(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    LOCKED = "locked"
    GONE = "gone"


DOOR = Transitions(
    "door",
    {
        Door.OPEN: [Door.CLOSED, Door.GONE],
        Door.CLOSED: (state for state in (Door.OPEN, Door.LOCKED)),  # any iterable, read once
        Door.LOCKED: {Door.CLOSED, Door.LOCKED},
        Door.GONE: set(),
    },
)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Door.OPEN, Door.CLOSED),
        (Door.CLOSED, Door.OPEN),
        (Door.CLOSED, Door.LOCKED),
        (Door.LOCKED, Door.CLOSED),
        (Door.LOCKED, Door.LOCKED),
    ],
)
def test_a_listed_move_returns_the_new_state(current, new) -> None:
    assert DOOR.check(current, new) is new
    assert DOOR.check(current, new) is new  # the table is not used up by checking


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Door.OPEN, Door.LOCKED),
        (Door.OPEN, Door.OPEN),  # staying put is a move too, allowed only when listed
        (Door.LOCKED, Door.OPEN),
        (Door.GONE, Door.OPEN),
        (Door.GONE, Door.GONE),
    ],
)
def test_a_move_the_table_does_not_list_raises_naming_both_states(current, new) -> None:
    with pytest.raises(IllegalTransition) as raised:
        DOOR.check(current, new)
    assert str(raised.value) == f"illegal door transition {current.name} -> {new.name}"
    assert isinstance(raised.value, RuntimeError)


def test_only_a_state_with_no_moves_is_final() -> None:
    assert [state for state in Door if DOOR.is_final(state)] == [Door.GONE]
    assert DOOR.name == "door"


@pytest.mark.parametrize(
    ("table", "states", "finals"),
    [
        (vad._TRANSITIONS, VadState, []),
        (session._TRANSITIONS, SessionState, [SessionState.CLOSED]),
        (
            reply_handle._TRANSITIONS,
            ReplyState,
            [ReplyState.COMPLETED, ReplyState.INTERRUPTED, ReplyState.CANCELLED, ReplyState.FAILED],
        ),
    ],
)
def test_the_cores_state_machines_end_where_their_docstrings_say(table, states, finals) -> None:
    # Every state has a row (a forgotten one could never be left) and only the ended ones are final.
    assert [state for state in states if table.is_final(state)] == finals
