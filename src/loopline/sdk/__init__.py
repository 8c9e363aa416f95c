"""Loopline's Python SDK.

async with Loopline() as client:
    run = await client.submit("Compute 17 + 25, then multiply the result by 3")
    async for event in run.steps():   # or: async for chunk in run.stream(): print(chunk.text)
        print(event.type)
    print(run.outcome)
"""

from loopline_bus import EventStream
from loopline_events import TextChunk
from loopline_memory.domain.replay import Replay, StepNotReachedError

from loopline.sdk._client import FOLLOWED_TOPICS, Loopline, Run
from loopline.sdk._fork import fork_run
from loopline.sdk._replay import replay_run
from loopline.sdk._rerun import Divergence, Rerun, rerun_run

__all__ = [
    "FOLLOWED_TOPICS",
    "Divergence",
    "EventStream",
    "Loopline",
    "Replay",
    "Rerun",
    "Run",
    "StepNotReachedError",
    "TextChunk",
    "fork_run",
    "replay_run",
    "rerun_run",
]
