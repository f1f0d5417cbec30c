"""Fuzzing the real consumer through the router: malformed, oversized, mistyped and out-of-order input.

Hypothesis draws sequences of client messages (seeded: ``derandomize``, bounded: a fixed number
of examples of at most a few dozen messages).  A small model of the protocol predicts which
error code each message must get; the session must answer every bad message with exactly
those errors (coalesced ones counted through ``count``), never close, still transcribe and
answer a real utterance with the real engines afterwards, and leave no session slot behind.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.audio import SUPPORTED_RATES
from streaming.web import consumer as consumers
from tests.support.speech import load_clip, normalize_text, silence
from tests.support.wsclient import connect_as, make_user

pytestmark = pytest.mark.django_db(transaction=True)

MAX_MESSAGE_BYTES = 4096
DOCUMENTED_CODES = {"BAD_MESSAGE", "NOT_STARTED", "UNSUPPORTED_SAMPLE_RATE", "FRAME_TOO_LARGE"}
_users = itertools.count()


@dataclass(frozen=True)
class Sent:
    """One client message: text or binary, and a model step that returns the error it must get."""

    text: str | None = None
    data: bytes | None = None
    kind: str = ""


def _json(value) -> str:
    return json.dumps(value, allow_nan=True)


junk_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)

malformed = st.one_of(
    # WebsocketCommunicator cannot send an empty frame (a real client can; the server handles it alike).
    st.text(min_size=1, max_size=60).filter(lambda t: not _is_json_object(t)),
    st.sampled_from(["{", "[", '{"type": "start"', "null", "[]", '"start"', "NaN", "{}", '{"type": 1}']),
    st.integers(min_value=5, max_value=2_000).map(lambda depth: "[" * depth + "]" * depth),
    st.builds(lambda key: _json({"type": "start", "sample_rate": key}).replace("null", "NaN"), st.none()),
    st.sampled_from(['{"type": "playback", "turn_id": "t", "seq": 0, "played_s": Infinity}']),
    st.text(alphabet="ab", min_size=1, max_size=8).map(lambda t: _json({"type": t})),
).map(lambda text: Sent(text=text, kind="malformed"))

mistyped = st.one_of(
    junk_values.filter(lambda v: not _is_int(v)).map(lambda v: {"type": "start", "sample_rate": v}),
    junk_values.filter(lambda v: not (isinstance(v, str) and v.strip())).map(
        lambda v: {"type": "text", "text": v}
    ),
    st.fixed_dictionaries({"type": st.just("playback"), "turn_id": junk_values, "seq": junk_values}).filter(
        lambda m: not (isinstance(m["turn_id"], str) and _is_int(m["seq"]))
    ),
).map(lambda message: Sent(text=_json(message), kind="mistyped"))

commands = st.one_of(
    st.sampled_from(SUPPORTED_RATES).map(lambda rate: {"type": "start", "sample_rate": rate}),
    st.integers(min_value=1, max_value=200_000)
    .filter(lambda r: r not in SUPPORTED_RATES)
    .map(lambda rate: {"type": "start", "sample_rate": rate}),
    st.just({"type": "stop"}),
    st.just({"type": "cancel"}),
    st.builds(
        lambda seq, played: {"type": "playback", "turn_id": "nope", "seq": seq, "played_s": played},
        st.integers(-5, 5),
        st.floats(0, 1e6),
    ),
).map(lambda message: Sent(text=_json(message), kind="command"))

frames = st.one_of(
    st.binary(min_size=1, max_size=641),
    st.integers(MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES).map(lambda size: b"\x01" * size),
).map(lambda data: Sent(data=data, kind="frame"))

oversized_text = st.integers(MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES).map(
    lambda size: Sent(text=_json({"type": "text", "text": "x" * size}), kind="oversized")
)

messages = st.lists(st.one_of(malformed, mistyped, commands, frames, oversized_text), min_size=1, max_size=25)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def expected_errors(sent: list[Sent]) -> Counter[str]:
    """The error codes the protocol documents for this sequence, by a model of its state."""
    started = False
    errors: Counter[str] = Counter()
    for message in sent:
        size = len(message.data) if message.data is not None else len(message.text.encode())
        if size > MAX_MESSAGE_BYTES:
            errors["FRAME_TOO_LARGE"] += 1
        elif message.data is not None:
            if not started:
                errors["NOT_STARTED"] += 1
        elif message.kind in ("malformed", "mistyped"):
            errors["BAD_MESSAGE"] += 1
        else:
            command = json.loads(message.text)
            if command["type"] == "start":
                if command["sample_rate"] in SUPPORTED_RATES:
                    started = True
                else:
                    errors["UNSUPPORTED_SAMPLE_RATE"] += 1
            elif command["type"] == "stop":
                if not started:
                    errors["NOT_STARTED"] += 1
                started = False
    return errors


async def _received_errors(client, expected: Counter[str]) -> Counter[str]:
    """Wait until the errors received account for ``expected`` (coalesced ones arrive a second late)."""

    def received() -> Counter[str]:
        counts: Counter[str] = Counter()
        for message in client.of_type("error"):
            counts[message["code"]] += message.get("count", 1)
        return counts

    expected_total = sum(expected.values())
    try:
        await client.until(lambda _: sum(received().values()) >= expected_total, timeout=10)
    except TimeoutError:
        pass
    return received()


async def _answers_a_real_utterance(client) -> None:
    await client.send(type="start", sample_rate=16000)
    speech = np.concatenate([silence(0.3), load_clip("ps_goforward"), silence(0.3)])
    await client.send_audio(speech, chunk=3200, pace=0.05)
    await client.send(type="stop")
    # Noise among the fuzzed frames may have been an utterance of its own: wait for this one.
    final = await client.until(
        lambda m: m.get("type") == "final_transcript" and "forward" in normalize_text(m["text"]), 120
    )
    await client.until(lambda m: m.get("type") == "turn_complete" and m["turn_id"] == final["id"], 120)


@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(sent=messages)
async def test_fuzzed_messages_get_documented_errors_and_the_session_still_works(stream_config, sent) -> None:
    stream_config(max_message_bytes=MAX_MESSAGE_BYTES)
    client = await connect_as(await make_user(f"fuzz-{next(_users)}"))
    try:
        for message in sent:
            if message.data is not None:
                await client.ws.send_to(bytes_data=message.data)
            else:
                await client.send_raw(message.text)
        expected = expected_errors(sent)
        received = await _received_errors(client, expected)
        assert set(received) <= DOCUMENTED_CODES
        assert received == expected, [m.text[:80] if m.text else len(m.data) for m in sent]
        await _answers_a_real_utterance(client)
        assert client.closed_code is None
    finally:
        await client.close()
    assert consumers.slots.total == 0
