"""configure through the real router: session_updated, refusals, the next turn's settings, storage."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from conversations import services
from conversations.models import Conversation
from streaming.rate_limit import CONFIGURE_BURST, CONFIGURES_PER_S, SLACK
from tests.support.speech import load_clip, silence
from tests.support.wsclient import connect_as, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def spoken(name: str = "ps_goforward", trailing: float = 1.5) -> np.ndarray:
    return np.concatenate([silence(0.3), load_clip(name), silence(trailing)])


async def test_configure_is_answered_with_the_settings_in_effect_and_stored(
    scripted_engines, stream_config
) -> None:
    client = await connect_as(await make_user())
    session = client.of_type("session")[0]
    assert session["settings"]["silence_ms"] == 500 and session["settings"]["barge_in"] is False
    assert session["settings_limits"]["silence_ms"] == {"min": 300, "max": 1200}
    await client.send(type="configure", settings={"silence_ms": 900, "system_prompt": "Be a pirate."})
    updated = await client.until_type("session_updated")
    assert updated["settings"] == {
        "system_prompt": "Be a pirate.",
        "silence_ms": 900,
        "barge_in": False,
        "turn_detection": "fixed",
        "language": "en",
        "voice": "auto",
    }
    assert updated["turn_detection"] == {"mode": "fixed", "silence_ms": 900}
    await client.send(type="text", text="keep this conversation")
    await client.until_type("turn_complete")
    await client.close()
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.settings == {**updated["settings"], "chosen": ["silence_ms", "system_prompt"]}


async def test_an_invalid_configure_gets_an_error_naming_the_field_and_changes_nothing(
    scripted_engines, stream_config
) -> None:
    client = await connect_as(await make_user())
    await client.send(type="configure", settings={"silence_ms": 900, "barge_in": "yes"})
    error = await client.until_type("error")
    assert (error["code"], error["recoverable"]) == ("BAD_SETTING", True)
    assert "settings.barge_in" in error["message"]
    await client.send(type="configure", settings={"silence_ms": 5000})
    # Errors of one code are coalesced to one a second: this one comes at the end of that second.
    error = await client.until(
        lambda m: m.get("type") == "error" and "settings.silence_ms" in m["message"], 5
    )
    assert "from 300 to 1200" in error["message"]
    await client.send(type="configure", settings={})
    unchanged = await client.until_type("session_updated")
    assert unchanged["settings"] == client.of_type("session")[0]["settings"]
    await client.send(type="text", text="a turn to keep the conversation")
    await client.until_type("turn_complete")
    await client.close()
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.settings["silence_ms"] == 500


async def test_settings_changes_beyond_their_limit_are_refused_and_change_nothing(
    scripted_engines, stream_config
) -> None:
    """Each change may load a voice and is a journaled write of up to a whole system prompt (kept
    on disk through a database outage): a client looping on configure is held to the limit the
    session event advertises."""
    client = await connect_as(await make_user())
    limits = client.of_type("session")[0]["limits"]
    assert (limits["configures_per_s"], limits["configure_burst"]) == (CONFIGURES_PER_S, CONFIGURE_BURST)
    sent = 12
    for index in range(sent):
        await client.send(type="configure", settings={"system_prompt": f"Prompt {index}."})

    def refused() -> int:
        return sum(m.get("count", 1) for m in client.of_type("error") if m["code"] == "MESSAGES_TOO_FAST")

    await client.until(lambda m: len(client.of_type("session_updated")) + refused() == sent, timeout=10)
    prompts = [m["settings"]["system_prompt"] for m in client.of_type("session_updated")]
    taken = CONFIGURE_BURST + SLACK
    assert taken <= len(prompts) <= taken + 1  # one more only if a second passed while they arrived
    assert prompts == [f"Prompt {index}." for index in range(len(prompts))]  # the first ones, in order
    await asyncio.sleep(1 / CONFIGURES_PER_S)
    await client.send(type="configure", settings={"system_prompt": "A second later."})
    await client.until(
        lambda m: m.get("type") == "session_updated" and m["settings"]["system_prompt"] == "A second later."
    )
    await client.close()


async def test_a_session_chooses_a_language_the_model_can_hear(scripted_engines, stream_config) -> None:
    client = await connect_as(await make_user())  # tiny.en: English only
    assert client.of_type("session")[0]["settings_limits"]["language"] == {"choices": ["en"]}
    await client.send(type="configure", settings={"language": "de"})
    error = await client.until_type("error")
    assert error["code"] == "BAD_SETTING" and "English only; got 'de'" in error["message"]
    await client.close()
    stream_config(model_whisper="base")
    client = await connect_as(await make_user("bilingual"))
    await client.send(type="configure", settings={"language": "de"})
    assert (await client.until_type("session_updated"))["settings"]["language"] == "de"
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(spoken())
    await client.until_type("turn_complete", 30)
    await client.close()
    assert "de" in scripted_engines.asr.languages


async def test_the_next_turn_uses_the_new_system_prompt(scripted_engines, stream_config) -> None:
    client = await connect_as(await make_user())
    await client.send(type="text", text="first")
    await client.until_type("turn_complete")
    await client.send(type="configure", settings={"system_prompt": "Answer like a pirate."})
    await client.until_type("session_updated")
    await client.send(type="text", text="second")
    await client.until(
        lambda m: m.get("type") == "turn_complete" and len(client.of_type("turn_complete")) == 2
    )
    await client.close()
    first, second = scripted_engines.llm.requests
    assert first[0].role == "system" and first[0].content != "Answer like a pirate."
    assert (second[0].role, second[0].content) == ("system", "Answer like a pirate.")


async def test_a_new_silence_applies_from_the_next_utterance(scripted_engines, stream_config) -> None:
    client = await connect_as(await make_user())
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(np.concatenate([silence(0.3), load_clip("ps_goforward")]))
    await client.until_type("speech_started")
    # Mid-utterance: this one keeps its 500 ms, the next one waits 900 ms.
    await client.send(type="configure", settings={"silence_ms": 900})
    await client.until_type("session_updated")
    await client.send_audio(silence(1.5))
    await client.until_type("metrics")
    await client.send_audio(spoken("ps_cards_005"))
    await client.until(lambda m: m.get("type") == "metrics" and len(client.of_type("metrics")) == 2)
    await client.close()
    assert [m["end_pause_ms"] for m in client.of_type("metrics")] == [500, 900]
    assert [m["end_rule"] for m in client.of_type("metrics")] == ["fixed", "fixed"]


async def test_barge_in_switched_on_lets_speech_interrupt_the_next_reply(
    scripted_engines, stream_config
) -> None:
    scripted_engines.llm.replies = [["This reply is long.", " It has a second sentence.", " And a third."]]
    scripted_engines.tts.seconds_per_char = 0.1
    client = await connect_as(await make_user())  # barge-in off on this server (stream_config)
    await client.send(type="configure", settings={"barge_in": True})
    assert (await client.until_type("session_updated"))["settings"]["barge_in"] is True
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(spoken())
    chunk = await client.until_type("tts_chunk")
    await client.send_audio(spoken("ps_cards_005"))
    interrupted = await client.until_type("interrupted")
    assert interrupted["turn_id"] == chunk["turn_id"] and interrupted["reason"] == "barge_in"
    await client.close()


async def test_adaptive_turn_detection_for_one_session(scripted_engines, stream_config) -> None:
    stream_config(turn_model="text")  # the fixed rule for the server; the text cues for this session
    client = await connect_as(await make_user())
    await client.send(type="configure", settings={"turn_detection": "adaptive", "silence_ms": 800})
    updated = await client.until_type("session_updated")
    assert updated["turn_detection"]["mode"] == "adaptive" and updated["turn_detection"]["silence_ms"] == 800
    await client.send(type="start", sample_rate=16000)
    await client.send_audio(spoken())
    metrics = await client.until_type("metrics")
    await client.close()
    # "hello there" ends without punctuation: unsure, so the session's own silence.
    assert (metrics["end_rule"], metrics["end_pause_ms"]) == ("unsure", 800)


async def test_a_resumed_conversation_keeps_its_settings(scripted_engines, stream_config) -> None:
    user = await make_user()
    first = await connect_as(user)
    conversation_id = first.of_type("session")[0]["conversation_id"]
    await first.send(type="configure", settings={"silence_ms": 1100, "system_prompt": "Be brief."})
    await first.until_type("session_updated")
    await first.send(type="text", text="remember me")
    await first.until_type("turn_complete")
    await first.close()
    again = await connect_as(user, f"/ws?conversation={conversation_id}")
    session = again.of_type("session")[0]
    await again.close()
    assert session["resumed"] is True
    assert (session["settings"]["silence_ms"], session["settings"]["system_prompt"]) == (1100, "Be brief.")
    assert session["turn_detection"] == {"mode": "fixed", "silence_ms": 1100}


async def test_a_resumed_conversation_follows_the_server_in_what_its_client_did_not_choose(
    scripted_engines, stream_config
) -> None:
    """The server's defaults changed between two sessions of a conversation (a new prompt, adaptive
    detection, barge-in): the resumed session takes them, and keeps the silence its client chose."""
    user = await make_user()
    first = await connect_as(user)
    conversation_id = first.of_type("session")[0]["conversation_id"]
    await first.send(type="configure", settings={"silence_ms": 1100})
    await first.until_type("session_updated")
    await first.send(type="text", text="remember me")
    await first.until_type("turn_complete")
    await first.close()
    stream_config(system_prompt="The new default prompt.", turn_detection="adaptive", barge_in=True)
    again = await connect_as(user, f"/ws?conversation={conversation_id}")
    await again.send(type="configure", settings={"voice": "espeak-ng"})
    await again.until_type("session_updated")
    await again.close()
    assert {**again.of_type("session")[0]["settings"], "voice": "espeak-ng"} == {
        "system_prompt": "The new default prompt.",
        "silence_ms": 1100,
        "barge_in": True,
        "turn_detection": "adaptive",
        "language": "en",
        "voice": "espeak-ng",
    }
    stored = await sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert stored.settings["chosen"] == ["silence_ms", "voice"]


STORED = {
    "system_prompt": "Be brief.",
    "silence_ms": 1100,
    "barge_in": True,
    "turn_detection": "fixed",
    "language": "de",
    "voice": "auto",
}


@pytest.mark.parametrize(
    ("server", "refused"),
    [
        # Stored while the server ran the multilingual model; it now hears English only (tiny.en).
        ({}, {"language": "en"}),
        # The server no longer lets sessions choose their prompt (STREAM_MAX_SYSTEM_PROMPT_CHARS=0).
        ({"max_system_prompt_chars": 0, "model_whisper": "base"}, {"system_prompt": None}),
    ],
)
async def test_a_resumed_conversation_drops_only_the_settings_the_server_no_longer_allows(
    scripted_engines, stream_config, settings, server, refused
) -> None:
    stream_config(**server)
    user = await make_user()
    conversation = await sync_to_async(services.start_conversation)(user, client_kind="api", engines={})
    await sync_to_async(services.record_settings)(conversation.pk, STORED)
    again = await connect_as(user, f"/ws?conversation={conversation.pk}")
    session = again.of_type("session")[0]
    await again.send(type="text", text="keep this conversation")
    await again.until_type("turn_complete")
    await again.close()
    expected = {**STORED, **refused}
    if "system_prompt" in refused:
        expected["system_prompt"] = settings.STREAM_CONFIG.system_prompt
    assert session["settings"] == expected
    conversation = await sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    # Stored before choices were recorded: every setting was the client's, less the refused one.
    assert conversation.settings == {**expected, "chosen": sorted(set(STORED) - set(refused))}


def test_the_history_page_and_the_export_show_the_settings_used(client, alice) -> None:
    conversation = services.start_conversation(alice, client_kind="browser", engines={})
    settings = {
        "system_prompt": "Be brief.",
        "silence_ms": 900,
        "barge_in": False,
        "turn_detection": "adaptive",
        "language": "de",
        "voice": "espeak-ng",
    }
    services.record_settings(conversation.pk, settings)
    client.force_login(alice)
    page = " ".join(client.get(conversation.get_absolute_url()).content.decode().split())
    assert "Adaptive, 900 <small>ms</small>" in page and "<dd>Off</dd>" in page and "Be brief." in page
    assert "<dt>Language</dt><dd>de</dd>" in page and "<dt>Voice</dt><dd>espeak-ng</dd>" in page
    assert client.get(f"{conversation.get_absolute_url()}export.json").json()["settings"] == settings
