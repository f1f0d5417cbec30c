"""The benchmark harness runs end to end on two clips: real daphne, real WebSockets, real models.

This shows the harness works and its JSON holds every section with sane values;
it asserts nothing about timings (the machine is shared and noisy).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import procstat, vad_lag
from bench.client import TURN_TIMEOUT_S, TurnRecord

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ["ps_goforward", "lj_LJ001-0013"]
LATENCIES = ("endpointing_ms", "final_to_token_ms", "token_to_tts_ms", "voice_to_voice_ms")


def test_bench_runs_on_two_clips_and_writes_its_report(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--clip-names",
            ",".join(CLIPS),
            "--sessions",
            "1",
            "--repeats",
            "1",
            "--asr-threads",
            "1",
            "--asr-workers",
            "1",
            "--asr-calls",
            "1",
            "--openai-base-url",
            "http://127.0.0.1:9/v1",  # nothing listens there: the run is skipped
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Targets" in result.stdout and "voice-to-voice" in result.stdout

    report = json.loads(output.read_text())
    assert report["machine"]["cpus"] >= 1 and report["server_config"]["model"]

    (cost,) = report["asr_cost"]
    assert (cost["cpu_threads"], cost["workers"]) == (1, 1)
    assert 0 < cost["partial_s"]["p50"] and 0 < cost["final_s"]["p50"] and 0 < cost["final_rtf"]

    latency = report["latency"]["offline"]
    assert latency["turns"] == 2 and latency["turn_status"] == {"completed": 2}
    assert not latency["session_errors"]
    for key in LATENCIES:
        figures = latency[key]
        assert figures["count"] == 2
        # The offline responder's first token can come within 0.05 ms: it rounds to 0.0.
        assert 0 <= figures["p50"] <= figures["p90"] <= figures["p95"] <= figures["max"]
    # Speech end comes before the final, the final before the reply's first audio. The client stamps
    # each message as it reads it, so a final and a first audio chunk that wait in its socket
    # together (the client was not scheduled for a few ms) carry the same stamp.
    for turn in latency["turn_records"]:
        assert turn["voice_to_voice_ms"] >= turn["endpointing_ms"] > 0
    assert "skipped" in report["latency"]["openai"]

    (level,) = report["capacity"]["levels"]
    assert (
        level["sessions"] == 1
        and report["capacity"]["bound_ms"] == report["server_config"]["vad_silence_ms"] + 500
    )
    assert 0 < level["cpu_percent"] and 0 < level["rss_mb_peak"]

    memory = report["memory"]
    assert 100 < memory["idle_rss_mb"] <= memory["rss_mb_peak_by_sessions"]["1"]

    accuracy = report["accuracy"]["latency_run"]
    assert accuracy["clips"] == 2 and [row["clip"] for row in accuracy["per_clip"]] == CLIPS
    assert "forward" in accuracy["per_clip"][0]["streamed"].lower()
    assert 0 <= accuracy["streamed_wer"] < 0.5 and 0 <= accuracy["batch_wer"] < 0.5

    assert report["accuracy"]["all_runs"]["clips"] == 2
    assert {t["target"] for t in report["targets"]} >= {"endpointing p50 (ms)", "voice-to-voice p50 (ms)"}


def test_vad_lag_prints_one_row_per_setting(capsys):
    vad_lag.main(["--gates", "0,30", "--frames", "20", "--noise", "0"])
    rows = capsys.readouterr().out.splitlines()[3:]
    assert len(rows) == 2
    lag_p50 = [int(row.split()[3]) for row in rows]
    assert lag_p50[1] < lag_p50[0]  # the gate ends speech nearer the manifest's speech end


def test_soak_reports_memory_from_proc_and_every_turn(tmp_path):
    output = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            *("--users", "2", "--minutes", "0.25", "--warmup", "5", "--sample-every", "1"),
            *("--output", str(output)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Server memory" in result.stdout and "Minute by minute" in result.stdout

    report = json.loads(output.read_text())
    assert report["project"]["path"] == str(ROOT) and report["project"]["commit"] != "unknown"
    memory = report["memory"]
    for moment in ("idle", "start", "end", "closed"):
        figures = memory[moment]
        assert figures["daphne_mb"] > 100  # the Whisper model is loaded
        assert figures["total_mb"] == pytest.approx(figures["daphne_mb"] + figures["workers_mb"], abs=0.2)
    assert memory["closed"]["workers"] >= 1  # replies were spoken: the TTS worker processes are counted
    assert memory["peak_daphne_mb_kernel"] >= max(r["daphne_mb"] for r in report["readings"])
    assert len(report["readings"]) >= 15  # 20 s of soak read every second, plus the labelled moments
    for reading in report["readings"]:
        by_pid = reading["rss_by_pid_mb"]
        assert len(by_pid) == reading["workers"] + 1
        assert sum(by_pid.values()) == pytest.approx(reading["total_mb"], abs=0.1 * len(by_pid))

    talk = report["conversations"]
    assert talk["sessions"] == talk["conversation_ids"] == 2
    assert not talk["session_errors"] and not talk["errors_by_code"]
    assert talk["utterances_sent"] >= 2 and talk["turns_answered"] >= 1
    assert talk["finals_received"] >= 1 and talk["finals_stored"] == talk["finals_received"]
    assert talk["end_reasons"] == {"client_closed": 2}

    rows = report["per_minute"]
    assert [row["minute"] for row in rows] == ["warm-up", 1]
    assert sum(row["utterances"] for row in rows) == talk["utterances_sent"] == len(report["turn_records"])
    assert rows[-1]["total_mb"] == memory["end"]["total_mb"]


def test_tree_rss_reads_each_child_process():
    ready_then_sleep = "import time; print('ready', flush=True); time.sleep(30)"
    with subprocess.Popen(
        [sys.executable, "-c", ready_then_sleep], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout.readline() == "ready\n"  # measured once the interpreter is up, not mid-exec
            rss = procstat.tree_rss(os.getpid())
        finally:
            child.kill()
    assert list(rss)[0] == os.getpid() and child.pid in rss
    assert rss[child.pid] > 1024 * 1024  # a Python interpreter is resident in megabytes


def test_tts_bench_reports_cost_memory_and_intelligibility_per_engine(tmp_path, capsys):
    from bench import tts

    output = tmp_path / "tts.json"
    asyncio.run(tts.main(["--clips", "2", "--settings", "espeak-ng,piper-2x1", "--output", str(output)]))

    results = json.loads(output.read_text())["results"]
    assert set(results) == {"espeak-ng", "piper-2x1"}
    assert results["piper-2x1"]["voice"] == "Joe, English (United States)"
    for row in results.values():
        assert row["phrase_ms_one_at_a_time"]["count"] >= 5 and row["phrase_ms_one_at_a_time"]["p50"] > 0
        assert len(row["worker_rss_mb"]) == 2 and min(row["worker_rss_mb"]) > 10
        assert 0 <= row["wer_pct"] < 50  # both voices are mostly understood
    assert "piper-2x1" in capsys.readouterr().out


def test_a_clip_whose_reply_still_plays_is_not_given_up() -> None:
    """A reply's turn completes as it is played: a long one (a small LLM looping for 50 s) must not
    count as lost while the server still speaks, only once it falls silent for TURN_TIMEOUT_S."""
    record = TurnRecord("clip", "words", 2.0, started_at=0.0, speech_end_at=10.0)
    assert record.gave_up_at() == 10.0 + TURN_TIMEOUT_S
    record.last_heard_at = 10.0 + TURN_TIMEOUT_S - 1  # a tts_chunk just before the old deadline
    assert record.gave_up_at() == 10.0 + 2 * TURN_TIMEOUT_S - 1
