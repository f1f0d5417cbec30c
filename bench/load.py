"""Concurrent conversations against one server, with its CPU and memory sampled meanwhile."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from bench.client import Conversation, SessionResult, TurnRecord
from bench.corpus import Clip
from bench.procstat import Sampler
from bench.server import BenchServer

START_STAGGER_S = 3.0


@dataclass
class LevelRun:
    """One run of ``sessions`` concurrent conversations."""

    sessions: int
    results: list[SessionResult]
    process: dict[str, float]
    wall_s: float
    session_info: dict[str, Any]

    @property
    def turns(self) -> list[TurnRecord]:
        return [turn for result in self.results for turn in result.turns]


def assign(clips: list[Clip], sessions: int, per_session: int) -> list[list[Clip]]:
    """Each session's clips: consecutive slices of ``clips``, wrapping around, so sessions differ."""
    return [[clips[(s * per_session + k) % len(clips)] for k in range(per_session)] for s in range(sessions)]


async def run_level(
    server: BenchServer, token: str, plans: list[list[Clip]], *, seed: int, think_s: float = 0.8
) -> LevelRun:
    """Run one conversation per plan at once, start times staggered like independent users."""
    rng = random.Random(seed)
    stagger = START_STAGGER_S if len(plans) > 1 else 0.0
    conversations = [
        Conversation(server.url, token, clips, think_s=think_s, start_delay_s=rng.uniform(0, stagger))
        for clips in plans
    ]
    began = time.monotonic()
    async with Sampler(server.pid) as sampler:
        results = await asyncio.gather(*(c.run() for c in conversations))
    return LevelRun(
        sessions=len(plans),
        results=list(results),
        process=sampler.summary(),
        wall_s=round(time.monotonic() - began, 1),
        session_info=conversations[0].session_info,
    )
