"""Typed, validated configuration for the streaming pipeline.

Every ``STREAM_*`` and ``OPENAI_*`` variable is read here once, checked against
its documented bounds, and exposed as one frozen :class:`StreamConfig`.  An
invalid value raises :class:`ConfigError` naming the variable, the value and
the allowed range, so a mistyped setting stops start-up instead of surfacing as
a strange latency hours later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streaming.config_fields import ConfigError, allowed_values, parse_value, setting
from streaming.languages import check_language

__all__ = ["BUNDLED_MODEL", "DEFAULT_SYSTEM_PROMPT", "ConfigError", "StreamConfig"]

BUNDLED_MODEL = "tiny.en"
DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your replies are spoken aloud, so answer in one to three "
    "short sentences of plain conversational English, without lists, markdown or emoji."
)


@dataclass(frozen=True)
class StreamConfig:
    """All pipeline settings; build it with :meth:`from_env`."""

    model_whisper: str = setting(
        "STREAM_MODEL_WHISPER",
        BUNDLED_MODEL,
        doc="Whisper model with optional compute type (tiny.en, base-int8) or a CTranslate2 model directory: "
        "tiny.en is bundled (English only); base is multilingual, installed by make models WHISPER=base. "
        "Nothing is downloaded at run time.",
    )
    model_cache_dir: str = setting(
        "STREAM_MODEL_CACHE_DIR",
        "",
        doc="Where make models assembles the Whisper models it installs; empty: "
        "$XDG_CACHE_HOME/parley/whisper, else ~/.cache/parley/whisper.",
    )
    language: str = setting(
        "STREAM_LANGUAGE",
        "en",
        doc="Language users speak: a Whisper language code (en, de, es, fr, ...) or auto to detect it per "
        "utterance; English-only models (tiny.en) take only en. Without STREAM_TTS_VOICE the voice follows "
        "it: a Piper voice of that language if one is installed (Joe speaks English), else espeak-ng.",
    )
    asr_cpu_threads: int = setting(
        "STREAM_ASR_CPU_THREADS",
        1,
        low=1,
        high=16,
        doc="CPU threads per Whisper call (1 thread x 2 workers serves the most sessions on 2 cores; "
        "with more cores raise this first).",
    )
    asr_workers: int = setting(
        "STREAM_ASR_WORKERS", 2, low=1, high=8, doc="Whisper calls that may run at the same time."
    )
    asr_timeout_s: float = setting(
        "STREAM_ASR_TIMEOUT_S",
        20.0,
        low=1,
        high=300,
        doc="Longest one transcription may run once a worker has started it (time spent waiting "
        "for a worker does not count).",
    )
    asr_max_wait_s: float = setting(
        "STREAM_ASR_MAX_WAIT_S",
        60.0,
        low=1,
        high=600,
        doc="Longest a final transcription may wait for a free worker before it fails with ASR_TIMEOUT "
        "(finals are served in turn per session, so only an overloaded server or hung calls reach it).",
    )
    asr_beam_size: int = setting(
        "STREAM_ASR_BEAM_SIZE",
        1,
        low=1,
        high=10,
        doc="Beam size for final transcripts (partials always use 1).",
    )
    asr_window_padding_s: float = setting(
        "STREAM_ASR_WINDOW_PAD_S",
        5.0,
        low=1,
        high=30,
        doc="Whisper's encoder sees the audio plus this much padding (30: the full 30 s window); "
        "shorter is faster.",
    )
    vad_silence_ms: int = setting(
        "STREAM_VAD_SILENCE_MS", 700, low=100, high=5000, doc="Silence that ends an utterance."
    )
    vad_aggressiveness: int = setting(
        "STREAM_VAD_AGGRESSIVENESS",
        2,
        low=0,
        high=3,
        doc="webrtcvad aggressiveness, 0 (lenient) to 3 (strict).",
    )
    vad_frame_ms: int = setting(
        "STREAM_VAD_FRAME_MS", 20, choices=(10, 20, 30), doc="webrtcvad frame length."
    )
    vad_tail_gate_db: float = setting(
        "STREAM_VAD_TAIL_GATE_DB",
        30.0,
        low=0,
        high=60,
        doc="Inside an utterance, frames this far (dB) below its speech level count as silence "
        "(trims webrtcvad's ~80 ms hangover from the silence wait); 0 trusts webrtcvad alone.",
    )
    vad_preroll_ms: int = setting(
        "STREAM_VAD_PREROLL_MS",
        300,
        low=0,
        high=2000,
        doc="Audio kept from before speech start, so the first syllable survives.",
    )
    vad_start_ms: int = setting(
        "STREAM_VAD_START_MS",
        90,
        low=10,
        high=1000,
        doc="Voiced audio needed (within a short window) to start an utterance.",
    )
    max_utterance_s: float = setting(
        "STREAM_MAX_UTTERANCE_S",
        30.0,
        low=2,
        high=120,
        doc="An utterance this long is finalized even without a pause.",
    )
    min_speech_ms: int = setting(
        "STREAM_MIN_SPEECH_MS",
        200,
        low=0,
        high=5000,
        doc="Utterances with less voiced audio than this are ignored as noise.",
    )
    partial_interval_ms: int = setting(
        "STREAM_PARTIAL_INTERVAL_MS",
        1000,
        low=100,
        high=10000,
        doc="Interval between partial transcripts while speaking.",
    )
    speculative_final: bool = setting(
        "STREAM_SPECULATIVE_FINAL", True, doc="Start decoding the final transcript as soon as silence begins."
    )
    speculative_reply: bool = setting(
        "STREAM_SPECULATIVE_REPLY",
        True,
        doc="At a pause, start the LLM on the speculative final while the turn is undecided; its "
        "tokens are held until the turn ends with the same text, else discarded unseen.",
    )
    turn_detection: str = setting(
        "STREAM_TURN_DETECTION",
        "fixed",
        choices=("fixed", "adaptive"),
        doc="fixed: a turn ends after STREAM_VAD_SILENCE_MS of silence; adaptive: a detector judges each "
        "pause and the turn ends after STREAM_TURN_MIN_SILENCE_MS (complete), STREAM_VAD_SILENCE_MS "
        "(unsure) or STREAM_TURN_MAX_SILENCE_MS (unfinished).",
    )
    turn_model: str = setting(
        "STREAM_TURN_MODEL",
        "smart-turn",
        choices=("smart-turn", "text"),
        doc="Adaptive detector: smart-turn (Pipecat's Smart Turn v3 audio model and the text) or text "
        "(the transcript's punctuation and last word alone).",
    )
    turn_min_silence_ms: int = setting(
        "STREAM_TURN_MIN_SILENCE_MS",
        300,
        low=100,
        high=5000,
        doc="Adaptive: the pause that ends a turn the detector judges complete; also the shortest "
        "silence_ms a client may set for its session with configure.",
    )
    turn_max_silence_ms: int = setting(
        "STREAM_TURN_MAX_SILENCE_MS",
        1200,
        low=100,
        high=10000,
        doc="Adaptive: the pause that ends a turn the detector judges unfinished (a trailing 'and'); "
        "also the longest silence_ms a client may set for its session with configure.",
    )
    turn_complete_score: float = setting(
        "STREAM_TURN_COMPLETE_SCORE",
        0.95,
        low=0,
        high=1,
        doc="Adaptive, smart-turn: the model's probability of a complete turn needed to end it early.",
    )
    pcm_chunk_size: int = setting(
        "STREAM_PCM_CHUNK_SIZE",
        5120,
        low=320,
        high=65536,
        doc="Bytes per audio frame the browser client sends.",
    )
    audio_max_speed: float = setting(
        "STREAM_AUDIO_MAX_SPEED",
        3.0,
        low=1,
        high=100,
        doc="Fastest a session takes audio, as a multiple of real time at the sample rate declared in "
        "start; audio beyond it (and beyond STREAM_AUDIO_BURST_S) is dropped with AUDIO_TOO_FAST.",
    )
    audio_burst_s: float = setting(
        "STREAM_AUDIO_BURST_S",
        15.0,
        low=1,
        high=300,
        doc="Seconds of audio a client may send ahead of that pace at once (a backlog after a network "
        "stall), and the most audio one session holds unprocessed.",
    )
    max_pending_utterances: int = setting(
        "STREAM_MAX_PENDING_UTTERANCES",
        3,
        low=1,
        high=100,
        doc="Ended utterances one session may have waiting for their final transcript; while it is "
        "reached the session takes no more audio from its inbox, which fills and then drops audio "
        "with AUDIO_TOO_FAST.",
    )
    backpressure_threshold: int = setting(
        "STREAM_BACKPRESSURE_THRESHOLD",
        50,
        low=1,
        high=10000,
        doc="Queued audio frames before partial work is skipped.",
    )
    barge_in: bool = setting("STREAM_BARGE_IN", True, doc="Speech during a reply interrupts it.")
    llm_timeout_s: float = setting(
        "STREAM_LLM_TIMEOUT_S", 30.0, low=1, high=600, doc="Longest a whole reply may take."
    )
    llm_token_timeout_s: float = setting(
        "STREAM_LLM_TOKEN_TIMEOUT_S", 5.0, low=0.5, high=120, doc="Longest wait for the next token."
    )
    llm_first_token_timeout_s: float = setting(
        "STREAM_LLM_FIRST_TOKEN_TIMEOUT_S",
        20.0,
        low=0.5,
        high=300,
        doc="Longest wait for the first token: it includes reading the whole conversation so far, "
        "which takes a local model on a CPU several seconds.",
    )
    memory_turns: int = setting(
        "STREAM_MEMORY_TURNS", 10, low=0, high=200, doc="Past user/assistant exchanges sent to the LLM."
    )
    memory_max_chars: int = setting(
        "STREAM_MEMORY_MAX_CHARS",
        8000,
        low=200,
        high=500000,
        doc="Character budget of remembered history (about 4 characters a token).",
    )
    system_prompt: str = setting(
        "STREAM_SYSTEM_PROMPT", DEFAULT_SYSTEM_PROMPT, doc="System prompt for the LLM."
    )
    max_system_prompt_chars: int = setting(
        "STREAM_MAX_SYSTEM_PROMPT_CHARS",
        2000,
        low=0,
        high=16000,
        doc="Longest system prompt a client may set for its session with configure (0: none may).",
    )
    tts_engine: str = setting(
        "STREAM_TTS_ENGINE",
        "piper",
        choices=("piper", "pyttsx3"),
        doc="Speech synthesis engine: piper (neural voices) or pyttsx3 (espeak-ng).",
    )
    tts_voice: str = setting(
        "STREAM_TTS_VOICE",
        "",
        doc="Voice: for piper an installed voice (en_US-joe-medium) or a path to a .onnx voice; for "
        "pyttsx3 an espeak-ng voice (en-us). Empty: the engine's default.",
    )
    tts_rate: int = setting("STREAM_TTS_RATE", 175, low=80, high=450, doc="Speaking rate, words per minute.")
    tts_max_phrase_length: int = setting(
        "STREAM_TTS_MAX_PHRASE_LENGTH",
        60,
        low=10,
        high=1000,
        doc="Characters after which a phrase is cut at a word boundary.",
    )
    tts_worker_processes: int = setting(
        "STREAM_TTS_THREAD_WORKERS",
        1,
        low=1,
        high=16,
        doc="Synthesis worker processes, one voice loaded in each (the name is historical: they are "
        "processes, not threads). On 2 cores one Piper worker with 2 threads beats two with one: "
        "quicker first audio, half the memory.",
    )
    tts_cpu_threads: int = setting(
        "STREAM_TTS_CPU_THREADS",
        2,
        low=1,
        high=16,
        doc="Inference threads per Piper worker (espeak-ng uses one).",
    )
    tts_max_voices: int = setting(
        "STREAM_TTS_MAX_VOICES",
        3,
        low=1,
        high=32,
        doc="Voices a server process speaks with at once, its default included: a session choosing "
        "another voice or language starts that voice's workers (Piper about 300 MB each, espeak-ng "
        "about 30 MB); at this many, one no session uses is unloaded for the new one, and when all are "
        "in use configure refuses it. 1: every session uses the default.",
    )
    tts_timeout_s: float = setting(
        "STREAM_TTS_TIMEOUT_S", 10.0, low=1, high=120, doc="Longest one phrase may take to synthesize."
    )
    max_pending_phrases: int = setting(
        "STREAM_MAX_PENDING_PHRASES",
        5,
        low=1,
        high=100,
        doc="Phrases queued for synthesis before the LLM stream waits.",
    )
    max_message_bytes: int = setting(
        "STREAM_MAX_MESSAGE_BYTES", 262144, low=1024, high=16777216, doc="Largest WebSocket message accepted."
    )
    max_session_s: int = setting(
        "STREAM_MAX_SESSION_S", 3600, low=1, high=86400, doc="Longest a WebSocket session may last."
    )
    idle_timeout_s: int = setting(
        "STREAM_IDLE_TIMEOUT_S",
        300,
        low=1,
        high=86400,
        doc="A session with no client message for this long is closed.",
    )
    max_sessions_per_user: int = setting(
        "STREAM_MAX_SESSIONS_PER_USER",
        4,
        low=1,
        high=1000,
        doc="Concurrent sessions one user may hold (on all workers sharing Redis, else per worker).",
    )
    max_sessions: int = setting(
        "STREAM_MAX_SESSIONS", 32, low=1, high=10000, doc="Concurrent sessions one server process accepts."
    )
    openai_api_key: str = setting("OPENAI_API_KEY", "", doc="API key of an OpenAI-compatible endpoint.")
    openai_base_url: str = setting(
        "OPENAI_BASE_URL", "", doc="Base URL of an OpenAI-compatible endpoint (llama.cpp, vLLM, Ollama)."
    )
    openai_model: str = setting("OPENAI_MODEL", "gpt-3.5-turbo", doc="Chat model name.")
    openai_max_tokens: int = setting("OPENAI_MAX_TOKENS", 150, low=1, high=32768, doc="Reply length limit.")
    openai_temperature: float = setting("OPENAI_TEMPERATURE", 0.7, low=0, high=2, doc="Sampling temperature.")

    def __post_init__(self) -> None:
        check_language(self.language, self.model_whisper)
        silences = (self.turn_min_silence_ms, self.vad_silence_ms, self.turn_max_silence_ms)
        if self.turn_detection == "adaptive" and sorted(silences) != list(silences):
            raise ConfigError(
                "STREAM_TURN_MIN_SILENCE_MS, STREAM_VAD_SILENCE_MS, STREAM_TURN_MAX_SILENCE_MS",
                "/".join(map(str, silences)),
                "minimum <= silence <= maximum with adaptive turn detection",
            )

    @property
    def use_openai(self) -> bool:
        """True when an OpenAI-compatible endpoint is configured; else the offline responder."""
        return bool(self.openai_api_key or self.openai_base_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StreamConfig:
        """Build the configuration from ``env``; raise :class:`ConfigError` on a bad value.

        Names it does not know (a removed or mistyped variable) are ignored.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = parse_value(f, raw.strip())
        return cls(**values)

    def replace(self, **changes: Any) -> StreamConfig:
        """A copy with ``changes`` applied and validated like environment values."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        checked = {name: parse_value(fields[name], str(value)) for name, value in changes.items()}
        return dataclasses.replace(self, **checked)

    @classmethod
    def documented_variables(cls) -> list[tuple[str, Any, str, str]]:
        """(variable, default, allowed range, description) for every setting, for docs."""
        rows = []
        for f in dataclasses.fields(cls):
            rows.append((f.metadata["env"], f.default, allowed_values(f), f.metadata["doc"]))
        return rows
