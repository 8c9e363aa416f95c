"""Loopline's Python SDK.

async with Loopline() as client:
    run = await client.submit("Compute 17 + 25, then multiply the result by 3")
    async for event in run.steps():   # or: async for chunk in run.stream(): print(chunk.text)
        print(event.type)
    print(run.outcome)
"""

from loopline_bus import EventStream
from loopline_events import TextChunk
from loopline_memory.history import (
    Divergence,
    NoGoalError,
    Replay,
    Rerun,
    StepNotReachedError,
    replay_run,
    rerun_run,
)

from loopline.sdk._client import FOLLOWED_TOPICS, Loopline, Run, cancel_event, goal_event
from loopline.sdk._fork import fork_run

__all__ = [
    "FOLLOWED_TOPICS",
    "Divergence",
    "EventStream",
    "Loopline",
    "NoGoalError",
    "Replay",
    "Rerun",
    "Run",
    "StepNotReachedError",
    "TextChunk",
    "cancel_event",
    "fork_run",
    "goal_event",
    "replay_run",
    "rerun_run",
]
