"""``python -m bench.vad_lag``: where the VAD ends each clip, without a server or a model.

Every clip of the corpus is fed through :class:`~streaming.vad.VadSegmenter` in
100 ms chunks, between silence (optionally under white noise), once per VAD
setting.  For each setting it prints, against the manifest's ``speech_end_s``:

* speech-end lag: where the segmenter puts the end of speech;
* end emitted: when :class:`~streaming.vad.UtteranceEnd` comes out (the floor of
  the endpointing latency a client can measure, before any transcription);
* resumes: pauses that started a speculative final and then went on speaking.

It runs in seconds, so a VAD change can be judged before a full ``make bench``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from bench.corpus import Clip, bench_order, load_clips
from streaming.audio import SAMPLE_RATE
from streaming.config import StreamConfig
from streaming.metrics import percentile
from streaming.vad import SpeechResume, UtteranceEnd, VadSegmenter

CHUNK = SAMPLE_RATE // 10
LEAD_S = 0.8
TAIL_S = 1.5


@dataclass(frozen=True)
class VadFigures:
    """Percentiles in ms over the clips, and the counts that show what a setting costs."""

    lag_p50: float
    lag_p90: float
    emit_p50: float
    emit_p95: float
    resumes: int
    extra_utterances: int


def measure(clips: list[Clip], config: StreamConfig, noise_rms: float, seed: int = 0) -> VadFigures:
    rng = np.random.default_rng(seed)
    lags, emits, resumes, extra = [], [], 0, 0
    for clip in clips:
        lead, tail = np.zeros(round(LEAD_S * SAMPLE_RATE)), np.zeros(round(TAIL_S * SAMPLE_RATE))
        audio = np.concatenate([lead, clip.samples.astype(np.float64), tail])
        audio += rng.normal(0.0, noise_rms, len(audio)) if noise_rms else 0.0
        audio = np.clip(audio, -32768, 32767).astype(np.int16)
        vad = VadSegmenter.from_config(config)
        true_end = len(lead) + clip.speech_end_sample
        ends: list[tuple[int, int]] = []
        for offset in range(0, len(audio), CHUNK):
            for event in vad.feed(audio[offset : offset + CHUNK]):
                if isinstance(event, UtteranceEnd):
                    ends.append((event.speech_end_sample, offset + CHUNK))
                resumes += isinstance(event, SpeechResume)
        if not ends:
            continue
        extra += len(ends) - 1
        speech_end, emitted = ends[-1]
        lags.append((speech_end - true_end) * 1000 / SAMPLE_RATE)
        emits.append((emitted - true_end) * 1000 / SAMPLE_RATE)
    return VadFigures(_pct(lags, 50), _pct(lags, 90), _pct(emits, 50), _pct(emits, 95), resumes, extra)


def _pct(values: list[float], q: float) -> int:
    """A percentile in whole ms; a setting that ended no clip has none to give."""
    value = percentile(values, q)
    if value is None:
        raise ValueError("no clip ended: nothing to measure")
    return round(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.vad_lag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gates", default="0,30", help="STREAM_VAD_TAIL_GATE_DB values (default 0,30)")
    parser.add_argument("--frames", default="20,30", help="STREAM_VAD_FRAME_MS values (default 20,30)")
    parser.add_argument("--noise", default="0,60", help="white-noise RMS in int16 units (default 0,60)")
    args = parser.parse_args(argv)
    clips = load_clips(bench_order())
    base = StreamConfig()
    print(f"{len(clips)} clips, silence {base.vad_silence_ms} ms, aggressiveness {base.vad_aggressiveness}")
    header = "noise  frame  gate  lag p50/p90 ms  end emitted p50/p95 ms  resumes  extra utterances"
    print(header + "\n" + "-" * len(header))
    for noise in (float(n) for n in args.noise.split(",")):
        for frame in (int(f) for f in args.frames.split(",")):
            for gate in (float(g) for g in args.gates.split(",")):
                config = base.replace(vad_frame_ms=frame, vad_tail_gate_db=gate)
                f = measure(clips, config, noise)
                print(
                    f"{noise:5g}  {frame:5d}  {gate:4g}  {f.lag_p50:>7} / {f.lag_p90:<5}"
                    f"  {f.emit_p50:>12} / {f.emit_p95:<9}  {f.resumes:7d}  {f.extra_utterances:16d}"
                )


if __name__ == "__main__":
    main()
