"""Loopline's Python SDK.

async with Loopline() as client:
    run = await client.submit("Compute 17 + 25, then multiply the result by 3")
    async for event in run.steps():
        print(event.type)
    print(run.outcome)
"""

from loopline_bus import EventStream
from loopline_memory.history import (
    Divergence,
    Replay,
    Rerun,
    StepNotReachedError,
    replay_run,
    rerun_run,
)

from loopline.sdk._client import Loopline, Run, cancel_event, goal_event
from loopline.sdk._fork import fork_run

__all__ = [
    "Divergence",
    "EventStream",
    "Loopline",
    "Replay",
    "Rerun",
    "Run",
    "StepNotReachedError",
    "cancel_event",
    "fork_run",
    "goal_event",
    "replay_run",
    "rerun_run",
]
