"""The adaptive detector: text cues first, then (optionally) Smart Turn's score of the audio."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import numpy as np

from streaming.config import StreamConfig
from streaming.turn_detection import TurnRule, TurnVerdict
from streaming.turn_detection.cues import TextCue, text_cue
from streaming.turn_detection.smart_turn import SmartTurnModel, shared_smart_turn

logger = logging.getLogger(__name__)


class AdaptiveTurnDetector:
    """Judges a pause from the transcript's last words and, with a model, from the audio.

    * a trailing comma, dash or a word such as "and" or "the": unfinished;
    * no words (noise, or the transcript failed): unsure;
    * without a model, a question mark or full stop: complete;
    * with a model, its probability of a finished turn reaching ``STREAM_TURN_COMPLETE_SCORE``:
      complete; below it, unsure.

    A model that fails leaves the pause unsure (the fixed rule's wait): a detector never
    ends a turn by mistake, nor holds one for ever.
    """

    def __init__(self, config: StreamConfig, model: SmartTurnModel | None) -> None:
        self._model = model
        self._threshold = config.turn_complete_score
        self._silence = {
            TurnRule.COMPLETE: config.turn_min_silence_ms,
            TurnRule.UNSURE: config.vad_silence_ms,
            TurnRule.UNFINISHED: config.turn_max_silence_ms,
        }
        self.name = model.name if model is not None else "text"
        self._failures = 0

    async def judge(self, audio: np.ndarray, text: Awaitable[str] | str) -> TurnVerdict:
        """The verdict on the pause at the end of ``audio``; ``text`` may still be decoding."""
        score_task = asyncio.ensure_future(self._model.probability(audio)) if self._model else None
        try:
            words = text if isinstance(text, str) else await text
            cue = text_cue(words)
            if cue is TextCue.CONTINUATION:
                return self._verdict(TurnRule.UNFINISHED)
            if not words.strip():
                return self._verdict(TurnRule.UNSURE)
            if score_task is None:
                return self._verdict(TurnRule.COMPLETE if cue is not TextCue.NONE else TurnRule.UNSURE)
            score = await score_task
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failures += 1
            if self._failures == 1:  # a missing model fails every pause: say so once
                logger.exception("end-of-turn detection failed; pauses wait the full silence")
            return self._verdict(TurnRule.UNSURE)
        finally:
            if score_task is not None and not score_task.done():
                score_task.cancel()
        rule = TurnRule.COMPLETE if score >= self._threshold else TurnRule.UNSURE
        return self._verdict(rule, round(score, 3))

    def _verdict(self, rule: TurnRule, score: float | None = None) -> TurnVerdict:
        return TurnVerdict(rule, self._silence[rule], score)


def build_turn_detector(config: StreamConfig) -> AdaptiveTurnDetector | None:
    """The detector for ``config``: None for the fixed rule; the model is shared by the process."""
    if config.turn_detection != "adaptive":
        return None
    model = shared_smart_turn() if config.turn_model == "smart-turn" else None
    return AdaptiveTurnDetector(config, model)
