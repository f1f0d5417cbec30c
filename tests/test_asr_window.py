"""The bounded encoder window: audio plus padding, in whole seconds, never above 30 s."""

from __future__ import annotations

import faster_whisper.transcribe as transcribe
import numpy as np
import pytest

from streaming.asr.window import FULL_WINDOW_FRAMES, set_window_padding, window_frames
from streaming.config import StreamConfig


@pytest.fixture(autouse=True)
def restore_default_padding():
    yield
    set_window_padding(StreamConfig().asr_window_padding_s)


def test_window_is_the_audio_plus_padding_rounded_up_to_seconds() -> None:
    set_window_padding(5)
    assert window_frames(300) == 800
    assert window_frames(301) == 900
    assert window_frames(2600) == FULL_WINDOW_FRAMES
    assert window_frames(4000) == FULL_WINDOW_FRAMES


def test_thirty_seconds_restores_whispers_full_window() -> None:
    set_window_padding(30)
    assert window_frames(300) == FULL_WINDOW_FRAMES


def test_faster_whisper_pads_features_to_the_bounded_window() -> None:
    set_window_padding(2)
    padded = transcribe.pad_or_trim(np.ones((80, 250), dtype=np.float32))
    assert padded.shape == (80, 500)
    assert np.all(padded[:, 250:] == 0) and np.all(padded[:, :250] == 1)
