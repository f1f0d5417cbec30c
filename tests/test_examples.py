"""The README's example client against a real daphne server, on a recording bundled in the repository."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.daphne_process import DAPHNE, ROOT, free_port, server_env, user_with_token, wait_http
from tests.support.speech import AUDIO_DIR, clip_info, normalize_text


def test_stream_wav_example_prints_the_turn(tmp_path):
    env = server_env(tmp_path, STREAM_VAD_SILENCE_MS="700")
    token = user_with_token(env, "reader")
    port = free_port()
    server = subprocess.Popen(
        [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "voicesite.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "daphne.log", "w"),
    )
    try:
        wait_http(port)
        result = subprocess.run(
            [sys.executable, "examples/stream_wav.py", str(AUDIO_DIR / "ps_goforward.wav")]
            + ["--token", token, "--url", f"ws://127.0.0.1:{port}/ws"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        server.wait(30)

    assert result.returncode == 0, result.stderr
    kinds = [line.split()[1] for line in result.stdout.splitlines()]
    assert kinds[0] == "session"
    for kind in ("speech_started", "speech_stopped", "final_transcript", "llm_token", "tts_chunk", "metrics"):
        assert kind in kinds, result.stdout
    assert kinds[-1] == "turn_complete"
    final = next(line for line in result.stdout.splitlines() if line.split()[1] == "final_transcript")
    text = json.loads(final.split(" final_transcript ", 1)[1])["text"]
    assert normalize_text(text) == normalize_text(clip_info("ps_goforward").reference_text)
