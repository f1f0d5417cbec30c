"""A consumer cancelled while the client's close is still finalizing its session still stores it.

Daphne cancels every application on SIGTERM, and a disconnected one that outlives
``application_close_timeout``; Channels' test communicator cancels one whose
``disconnect(timeout=...)`` runs out.  Neither may cut short the close that stores the last utterance.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation, Turn
from streaming.web import consumer as consumers
from tests.support.speech import load_clip, silence
from tests.support.wsclient import connect_as, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def _stored() -> tuple[list[tuple[str, str]], list[str | None]]:
    turns = await sync_to_async(list)(Turn.objects.values_list("user_text", "status"))
    reasons = await sync_to_async(list)(Conversation.objects.values_list("end_reason", flat=True))
    return turns, reasons


async def test_cancelled_while_a_client_close_finalizes_the_last_utterance_is_still_stored(
    scripted_engines, stream_config
) -> None:
    scripted_engines.asr.final_delay = 1.0  # the close is still transcribing when the cancel comes
    user = await make_user()
    client = await connect_as(user)
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await client.until_type("speech_started")
    with contextlib.suppress(TimeoutError):
        await client.ws.disconnect(timeout=0.1)  # cancels the application on timeout
    assert client.ws.future.cancelled()
    expected = ([("hello there", "cancelled")], ["client_closed"])
    deadline = asyncio.get_running_loop().time() + 10
    while (await _stored()) != expected or consumers.slots.total:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert await _stored() == expected
    assert consumers.slots.total == 0
    assert scripted_engines.asr.final_calls == 1
