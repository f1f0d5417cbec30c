"""``python -m bench.turn_detector``: how well each end-of-turn detector tells an end from a pause.

Offline, without a server: for every clip of the bundled speech the detector judges two
moments, as the listener does once a pause has lasted ``--pause-ms`` (the audio up to then,
and the text the server's Whisper decodes from it, as the speculative final):

* the end: the speech and the first ``--pause-ms`` of silence after it — a finished turn;
* the inner pause: the speech up to the clip's longest inner pause (lengthened, with the
  clip's own quiet audio, to at least ``--pause-ms``) — the speaker goes on after it.

Per detector it prints the share of ends judged complete (answered after
``STREAM_TURN_MIN_SILENCE_MS``: more is faster), of inner pauses judged complete (the user
is cut off if the pause lasts that long: fewer is better), of ends judged unfinished (held
``STREAM_TURN_MAX_SILENCE_MS``), and the model's cost per call.  Prints figures only.

With ``--llm-url`` (``make llm-server`` running) it also measures a language model as the
detector, the way LiveKit's turn detector works: the transcript as an unfinished user
message, and the model's probability that the message ends there (its next token closes
the message).  LiveKit fine-tunes SmolLM2-135M for this; ``make llm-server`` serves the
instruct model as published, so these rows say what the untuned model can tell.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import urllib.request
from dataclasses import dataclass

import numpy as np

from bench.corpus import bench_order, load_clips
from bench.turns import lengthen_pause, longest_inner_pause
from streaming.asr.whisper import WhisperASR
from streaming.audio import SAMPLE_RATE
from streaming.config import StreamConfig
from streaming.metrics import percentile
from streaming.turn_detection import TurnDetector, TurnRule, TurnVerdict
from streaming.turn_detection.detector import AdaptiveTurnDetector
from streaming.turn_detection.smart_turn import shared_smart_turn

THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.98)
LLM_THRESHOLDS = (0.05, 0.1, 0.2)

# SmolLM2-Instruct's chat template (ChatML) with the system prompt it adds by default, up to
# the user's words: the message is left open for the model to close or go on.
CHATML_OPEN_USER = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\n"
)


@dataclass(frozen=True)
class Moment:
    """One pause to judge: the clip's audio up to it and the transcript of that audio."""

    clip: str
    finished: bool
    audio: np.ndarray
    text: str


async def moments(pause_ms: int, clips: int | None = None) -> list[Moment]:
    """Each clip's end, and its longest inner pause when it has one, transcribed by Whisper."""
    asr = WhisperASR(StreamConfig())
    pause = round(pause_ms * SAMPLE_RATE / 1000)
    found: list[Moment] = []
    for clip in load_clips(bench_order()[:clips]):
        end = clip.speech_end_sample
        # The clip's own audio after the speech, then digital silence if the recording stops sooner.
        ending = np.concatenate([clip.samples, np.zeros(pause, np.int16)])[: end + pause]
        text = (await asr.transcribe_final(ending, owner="bench")).text
        found.append(Moment(clip.name, True, ending, text))
        inner = longest_inner_pause(clip)
        lengthened = lengthen_pause(clip, pause_ms)
        if inner is not None and lengthened is not None:
            audio = lengthened.samples[: inner.start + pause]
            text = (await asr.transcribe_final(audio, owner="bench")).text
            found.append(Moment(clip.name, False, audio, text))
    asr.release()
    return found


async def judge_all(detector: TurnDetector, found: list[Moment]) -> tuple[list[TurnRule], list[float]]:
    rules, costs = [], []
    for moment in found:
        started = time.perf_counter()
        rules.append((await detector.judge(moment.audio, moment.text)).rule)
        costs.append((time.perf_counter() - started) * 1000)
    return rules, costs


class LanguageModelDetector:
    """Complete when llama.cpp's model gives the user's message ending now at least ``threshold``.

    ``first`` judges before the model is asked (text cues, and Smart Turn when it has it);
    only a pause it finds complete is put to the model.  The probability of the message
    ending is that of the special tokens (no bytes: ``<|im_end|>``, end of text) among the
    model's 100 likeliest next tokens, from llama.cpp's own ``/completion``.
    """

    def __init__(self, url: str, threshold: float, first: AdaptiveTurnDetector) -> None:
        self._first = first
        self._url = url.rstrip("/").removesuffix("/v1") + "/completion"
        self._threshold = threshold

    async def judge(self, audio: np.ndarray, text: str) -> TurnVerdict:
        verdict = await self._first.judge(audio, text)
        if verdict.rule is not TurnRule.COMPLETE:
            return verdict
        score = await asyncio.to_thread(self.probability, text)
        rule = TurnRule.COMPLETE if score >= self._threshold else TurnRule.UNSURE
        return TurnVerdict(rule, 0, round(score, 3))

    def probability(self, text: str) -> float:
        body = {"prompt": CHATML_OPEN_USER + text.strip(), "n_predict": 1, "n_probs": 100}
        request = urllib.request.Request(self._url, data=json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.load(response)
        top = reply["completion_probabilities"][0]["top_logprobs"]
        return sum(math.exp(t["logprob"]) for t in top if not t["bytes"])


def share(rules: list[TurnRule], found: list[Moment], finished: bool, rule: TurnRule) -> str:
    picked = [r for r, m in zip(rules, found, strict=True) if m.finished == finished]
    hits = sum(r is rule for r in picked)
    return f"{hits:>2}/{len(picked)} ({100 * hits / len(picked):3.0f}%)"


async def run(pause_ms: int, clips: int | None = None, llm_url: str | None = None) -> None:
    found = await moments(pause_ms, clips)
    base = StreamConfig().replace(turn_detection="adaptive")
    model = shared_smart_turn()
    await model.probability(np.zeros(SAMPLE_RATE, np.int16))  # loaded before anything is timed
    detectors = {"text": AdaptiveTurnDetector(base, None)}
    for threshold in THRESHOLDS:
        config = base.replace(turn_complete_score=threshold)
        detectors[f"smart-turn >= {threshold}"] = AdaptiveTurnDetector(config, model)
    for threshold in LLM_THRESHOLDS if llm_url else ():
        text_first = AdaptiveTurnDetector(base, None)
        detectors[f"llm >= {threshold}"] = LanguageModelDetector(llm_url, threshold, text_first)
    if llm_url:  # the two models err on different pauses: both must find it complete
        smart_turn_first = AdaptiveTurnDetector(base.replace(turn_complete_score=0.95), model)
        detectors["llm 0.1 + smart-turn"] = LanguageModelDetector(llm_url, 0.1, smart_turn_first)
    ends = sum(m.finished for m in found)
    print(f"judged after a {pause_ms} ms pause: {ends} ends of speech, {len(found) - ends} inner pauses")
    header = (
        f"{'detector':<20} {'ends complete':>14} {'pauses complete':>16} {'ends unfinished':>16}"
        f" {'ms/call p50':>12}"
    )
    print(header + "\n" + "-" * len(header))
    for name, detector in detectors.items():
        rules, costs = await judge_all(detector, found)
        print(
            f"{name:<20} {share(rules, found, True, TurnRule.COMPLETE):>14}"
            f" {share(rules, found, False, TurnRule.COMPLETE):>16}"
            f" {share(rules, found, True, TurnRule.UNFINISHED):>16} {percentile(costs, 50):>12.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.turn_detector", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--pause-ms", type=int, default=200, help="pause judged, ms (default 200)")
    parser.add_argument("--clips", type=int, help="the first N clips of the bundled speech (default all)")
    parser.add_argument(
        "--llm-url", help="llama.cpp's server (make llm-server: http://127.0.0.1:8080) as a detector too"
    )
    args = parser.parse_args(argv)
    asyncio.run(run(args.pause_ms, args.clips, args.llm_url))


if __name__ == "__main__":
    main()
