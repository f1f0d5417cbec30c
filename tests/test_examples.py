"""The README's example client against a real daphne server, on a recording bundled in the repository."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from tests.support.daphne_process import ROOT, free_port, running_daphne, server_env, user_with_token
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


def test_stream_wav_example_carries_on_through_a_server_restart(tmp_path):
    """SIGTERM mid-speech: the example is told SHUTTING_DOWN, reconnects once the server is back,
    resumes its conversation and streams the rest; both parts of the speech are stored in it."""
    env = server_env(tmp_path, STREAM_VAD_SILENCE_MS="700")
    token = user_with_token(env, "reader")
    port = free_port()
    with running_daphne(tmp_path, env, port):
        client = subprocess.Popen(
            [sys.executable, "examples/stream_wav.py", str(AUDIO_DIR / "jfk_inaugural_1961.wav")]
            + ["--token", token, "--url", f"ws://127.0.0.1:{port}/ws"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        printed = []
        for line in client.stdout:  # the server stops once the first words are heard
            printed.append(line)
            if " partial_transcript " in line:
                break
    with running_daphne(tmp_path, env, port):
        rest, errors = client.communicate(timeout=120)
    printed.append(rest)
    output = "".join(printed)
    assert client.returncode == 0, errors + output
    assert "SHUTTING_DOWN" in output and "reconnecting in" in output
    lines = output.splitlines()
    sessions = [json.loads(line.split(" session ", 1)[1]) for line in lines if " session {" in line]
    assert [s["resumed"] for s in sessions] == [False, True]
    conversation = sessions[0]["conversation_id"]
    assert sessions[1]["conversation_id"] == conversation
    assert lines[-1].split()[1] == "turn_complete"
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        said = [text for (text,) in db.execute(
            "SELECT user_text FROM conversations_turn WHERE conversation_id = ? ORDER BY created_at",
            (conversation.replace("-", ""),),
        )]  # fmt: skip
    assert len(said) >= 2 and all(said), said
    assert "country" in normalize_text(" ".join(said))  # the end of the speech, sent after the restart
