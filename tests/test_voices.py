"""Per-session voices: which engine speaks each choice, the process's bound, and a German session
heard in German (real espeak-ng workers, the real multilingual Whisper, the real router)."""

from __future__ import annotations

import base64
import functools

import numpy as np
import pytest
from asgiref.sync import sync_to_async

import streaming.tts as tts_registry
from bench.tts import _pcm_16k
from conversations.models import Conversation
from streaming.asr import WhisperASR
from streaming.commands import ConfigureCommand
from streaming.config import StreamConfig
from streaming.engines import Engines
from streaming.errors import BadSetting, TTSFailed
from streaming.events import ErrorEvent, TTSAudio, TurnFinished
from streaming.llm.offline import ENGLISH_ONLY, OfflineResponder
from streaming.tts import get_shared_tts, voices_in_use
from streaming.tts.voices import server_voice_config, session_voice, voice_choices, voice_config
from streaming.web import consumer as consumers
from tests.support.fakes import ScriptedASR, ScriptedLLM, ScriptedTTS
from tests.support.session_driver import make_session
from tests.support.wsclient import connect_as, make_user

MULTILINGUAL = StreamConfig().replace(model_whisper="base")


def test_auto_is_the_servers_voice_unless_the_session_speaks_another_language() -> None:
    assert voice_config("auto", "en", MULTILINGUAL) == MULTILINGUAL
    assert voice_config("auto", "auto", MULTILINGUAL) == MULTILINGUAL
    german = voice_config("auto", "de", MULTILINGUAL)
    assert (german.tts_engine, german.tts_voice) == ("pyttsx3", "de")  # no German Piper voice installed
    unspoken = voice_config("auto", "yo", MULTILINGUAL)  # Yoruba: neither engine speaks it
    assert unspoken == MULTILINGUAL
    espeak_server = MULTILINGUAL.replace(tts_engine="pyttsx3")
    assert voice_config("auto", "de", espeak_server).tts_voice == "de"  # espeak-ng follows the language
    assert get_shared_tts(voice_config("auto", "en", espeak_server)) is get_shared_tts(espeak_server)


def test_a_named_voice_speaks_its_own_language_and_espeak_ng_the_sessions() -> None:
    joe = voice_config("en_US-joe-medium", "de", MULTILINGUAL)
    assert (joe.tts_engine, joe.tts_voice) == ("piper", "en_US-joe-medium")
    espeak = voice_config("espeak-ng", "es", MULTILINGUAL)
    assert (espeak.tts_engine, espeak.tts_voice) == ("pyttsx3", "es")
    english = voice_config("espeak-ng", "auto", MULTILINGUAL)
    assert english.tts_voice == "en-us"


def test_one_voice_allowed_means_every_session_speaks_with_the_default() -> None:
    single = MULTILINGUAL.replace(tts_max_voices=1)
    assert voice_choices(single) == ("auto",)
    assert voice_config("auto", "de", single) == single
    assert voice_choices(MULTILINGUAL) == ("auto", "en_US-joe-medium", "espeak-ng")


def test_engines_speaking_the_same_voice_are_one() -> None:
    base = StreamConfig().replace(tts_engine="pyttsx3", tts_rate=173)
    explicit = base.replace(tts_voice="en-us")
    assert get_shared_tts(base) is get_shared_tts(explicit)  # en-us is the default for English
    piper = StreamConfig().replace(tts_rate=173)
    assert get_shared_tts(piper) is get_shared_tts(piper.replace(language="de", model_whisper="base"))


@pytest.fixture
def own_voices(monkeypatch):
    """A process registry of voices of the test's own (none loaded yet); its workers end with it."""
    shared = {}
    monkeypatch.setattr(tts_registry, "_shared", shared)
    monkeypatch.setattr(tts_registry, "_pinned", set())
    yield
    for engine in shared.values():
        engine.unload()


def voice_session(base: StreamConfig, llm: ScriptedLLM | None = None):
    """A session whose voice setting picks a shared engine, as the server's sessions do."""
    session, events = make_session(llm=llm, model_whisper="base", tts_engine="pyttsx3", tts_max_voices=2)
    session.engines = Engines(
        asr=session.engines.asr,
        llm=session.engines.llm,
        tts=get_shared_tts(server_voice_config(base)),
        voice=functools.partial(session_voice, base=base),
    )
    return session, events


async def test_a_new_voice_beyond_the_bound_is_refused_naming_the_field(own_voices) -> None:
    base = MULTILINGUAL.replace(tts_engine="pyttsx3", tts_max_voices=2)
    french, _ = voice_session(base)
    french.configure(ConfigureCommand(voice="espeak-ng", language="fr"))
    assert voices_in_use() == ["Basic synthetic voice (en-us)", "Basic synthetic voice (fr-fr)"]
    session, _ = voice_session(base)
    with pytest.raises(BadSetting) as by_voice:
        session.configure(ConfigureCommand(voice="espeak-ng", language="es"))
    assert by_voice.value.field == "voice"
    assert "already speaking with as many voices as it may" in by_voice.value.message
    assert session.settings.language == "en" and session.settings.voice == "auto"
    # With voice auto the language is never refused: other sessions' voices must not take it away.
    spanish = session.configure(ConfigureCommand(language="es"))
    assert (spanish.language, spanish.voice) == ("es", "auto")
    assert session.tts is get_shared_tts(server_voice_config(base))
    assert len(voices_in_use()) == 2, "no voice loaded beyond the bound"
    await session.aclose()
    await french.aclose()


async def test_a_voice_nobody_speaks_with_makes_room_for_another(own_voices) -> None:
    """Voices are loaded on demand up to the bound; one no session or reply uses any more is
    unloaded for the next, so the languages a server has heard never lock others out."""
    base = MULTILINGUAL.replace(tts_engine="pyttsx3", tts_max_voices=2)
    slow = ScriptedLLM([["Bonjour.", " Il fait beau", " aujourd'hui."]], delay=0.4)
    french, events = voice_session(base, llm=slow)
    french.configure(ConfigureCommand(language="fr"))
    french_voice = french.tts
    await french.submit_text("Quel temps fait-il ?")
    await events.wait_for(lambda event: isinstance(event, TTSAudio))
    french.configure(ConfigureCommand(language="en"))  # the reply in flight keeps its French voice
    spanish, _ = voice_session(base)
    with pytest.raises(BadSetting):
        spanish.configure(ConfigureCommand(voice="espeak-ng", language="es"))
    finished = await events.wait_for(lambda event: isinstance(event, TurnFinished))
    assert finished.assistant_text == "Bonjour. Il fait beau aujourd'hui."
    assert not [event for event in events.events if isinstance(event, ErrorEvent)]
    assert spanish.configure(ConfigureCommand(voice="espeak-ng", language="es")).voice == "espeak-ng"
    assert voices_in_use() == ["Basic synthetic voice (en-us)", spanish.tts.label]
    assert "(es" in spanish.tts.label
    with pytest.raises(TTSFailed):
        await french_voice.synthesize("Bonjour.")  # unloaded: its workers are gone
    assert (await spanish.tts.synthesize("Hola.")).startswith(b"RIFF")
    await spanish.aclose()
    await french.aclose()


@pytest.mark.django_db(transaction=True)
async def test_a_german_session_is_answered_in_a_german_voice(monkeypatch, stream_config) -> None:
    stream_config(model_whisper="base")
    base = consumers.settings.STREAM_CONFIG
    german_reply = ["Guten Morgen.", " Heute scheint die Sonne und wir gehen in den Park."]
    engines = Engines(
        asr=ScriptedASR(["unused"]),
        llm=ScriptedLLM([german_reply]),
        tts=ScriptedTTS(seconds_per_char=0.001),
        voice=functools.partial(session_voice, base=base),
    )
    monkeypatch.setattr(consumers, "shared_engines", lambda config: engines)
    client = await connect_as(await make_user())
    limits = client.of_type("session")[0]["settings_limits"]
    assert limits["voice"]["choices"] == ["auto", "en_US-joe-medium", "espeak-ng"]
    await client.send(type="configure", settings={"language": "de"})
    updated = await client.until_type("session_updated")
    assert updated["settings"]["voice"] == "auto"
    assert updated["engines"] == {"tts": "pyttsx3:de", "voice": "Basic synthetic voice (de)"}
    await client.send(type="text", text="Was machen wir heute?")
    await client.until_type("turn_complete", 60)
    await client.close()
    chunks = sorted(client.of_type("tts_chunk"), key=lambda chunk: chunk["seq"])
    audio = np.concatenate([_pcm_16k(base64.b64decode(chunk["audio_b64"])) for chunk in chunks])
    asr = WhisperASR(base.replace(language="auto", asr_timeout_s=300))
    try:
        heard = await asr.transcribe_final(audio, owner="test")
    finally:
        asr.close()
    # The same words in the server's English voice are heard as English ("You, Morjan, …").
    assert heard.language == "de", heard
    assert "guten morgen" in heard.text.lower(), heard
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.settings["language"] == "de" and conversation.settings["voice"] == "auto"


async def test_the_offline_responder_tells_a_session_in_another_language_it_answers_in_english() -> None:
    session, events = make_session(llm=OfflineResponder(), model_whisper="base")
    session.configure(ConfigureCommand(language="de"))
    await session.submit_text("Hallo, wie geht es dir?")
    finished = await events.wait_for(lambda event: isinstance(event, TurnFinished))
    await session.aclose()
    assert finished.assistant_text.startswith(ENGLISH_ONLY)


async def test_a_connected_model_is_asked_to_answer_in_the_sessions_language() -> None:
    llm = ScriptedLLM([["Hallo!"], ["Hola!"], ["Hi!"]])
    session, events = make_session(llm=llm, model_whisper="base", language="de")
    await session.submit_text("Guten Tag")
    await events.wait_for(lambda event: isinstance(event, TurnFinished))
    session.configure(ConfigureCommand(language="es"))
    await session.submit_text("Buenos días")
    await events.wait_for(lambda event: len(events.of(TurnFinished)) == 2)
    session.configure(ConfigureCommand(language="auto"))
    await session.submit_text("Hello")
    await events.wait_for(lambda event: len(events.of(TurnFinished)) == 3)
    await session.aclose()
    prompts = [request[0].content for request in llm.requests]
    assert prompts[0].endswith(
        "The user speaks German: always answer in German, whatever the instructions above say."
    )
    assert prompts[1].endswith("always answer in Spanish, whatever the instructions above say.")
    assert prompts[2] == session.config.system_prompt  # auto: the model follows the user


def test_the_servers_own_voice_speaks_its_language() -> None:
    german = MULTILINGUAL.replace(language="de")
    assert (server_voice_config(german).tts_engine, server_voice_config(german).tts_voice) == (
        "pyttsx3",
        "de",
    )
    assert server_voice_config(MULTILINGUAL) == MULTILINGUAL  # Joe speaks English
    chosen = german.replace(tts_voice="en_US-joe-medium")
    assert server_voice_config(chosen) == chosen  # the administrator's choice stands
    espeak = german.replace(tts_engine="pyttsx3")
    assert server_voice_config(espeak) == espeak  # espeak-ng follows STREAM_LANGUAGE by itself
