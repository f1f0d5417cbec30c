"""The README's example client against a real daphne server, on a recording bundled in the repository."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.daphne_process import ROOT, running_daphne, server_env, user_with_token
from tests.support.speech import AUDIO_DIR, clip_info, normalize_text


def run_example(tmp_path, *options: str) -> subprocess.CompletedProcess:
    """examples/stream_wav.py on ps_goforward.wav against a fresh daphne, with ``options``."""
    env = server_env(tmp_path, STREAM_VAD_SILENCE_MS="700")
    token = user_with_token(env, "reader")
    with running_daphne(tmp_path, env) as port:
        result = subprocess.run(
            [sys.executable, "examples/stream_wav.py", str(AUDIO_DIR / "ps_goforward.wav")]
            + ["--token", token, "--url", f"ws://127.0.0.1:{port}/ws", *options],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    return result


def test_stream_wav_example_prints_the_turn(tmp_path):
    result = run_example(tmp_path)
    assert result.returncode == 0, result.stderr
    kinds = [line.split()[1] for line in result.stdout.splitlines()]
    assert kinds[0] == "session"
    for kind in ("speech_started", "speech_stopped", "final_transcript", "llm_token", "tts_chunk", "metrics"):
        assert kind in kinds, result.stdout
    assert kinds[-1] == "turn_complete"
    final = next(line for line in result.stdout.splitlines() if line.split()[1] == "final_transcript")
    text = json.loads(final.split(" final_transcript ", 1)[1])["text"]
    assert normalize_text(text) == normalize_text(clip_info("ps_goforward").reference_text)


def test_stream_wav_example_configures_the_session_first(tmp_path):
    result = run_example(
        tmp_path,
        "--silence-ms",
        "1000",
        "--no-barge-in",
        "--system-prompt",
        "Be brief.",
        "--voice",
        "espeak-ng",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["session", "session_updated"]
    updated = json.loads(lines[1].split(" session_updated ", 1)[1])
    settings = updated["settings"]
    assert (settings["silence_ms"], settings["barge_in"], settings["system_prompt"], settings["voice"]) == (
        1000,
        False,
        "Be brief.",
        "espeak-ng",
    )
    assert updated["engines"]["tts"] == "pyttsx3:en-us"
    metrics = next(line for line in lines if line.split()[1] == "metrics")
    assert "end_rule=fixed end_pause_ms=1000" in metrics  # the server's own silence is 700 ms
    (tmp_path / "refused").mkdir()
    refused = run_example(tmp_path / "refused", "--silence-ms", "50")
    assert (
        refused.returncode != 0
        and "settings.silence_ms must be an integer from 300 to 1200" in refused.stderr
    )
