"""Loopline's Python SDK.

async with Loopline() as client:
    run = await client.submit("Compute 17 + 25, then multiply the result by 3")
    async for event in run.steps():   # or: async for chunk in run.stream(): print(chunk.text)
        print(event.type)
    print(run.outcome)

People in the loop (docs/decisions/0028): `client.approvals()` lists the tool calls held for
a person's approval, `approve`/`deny` answer one, `say` tells a running agent something.
They check first through memory's read API (on PostgreSQL) and raise CommandRefusedError,
sending nothing, when memory would refuse the command.
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
from loopline_memory.reads import Approval

from loopline.sdk._client import FOLLOWED_TOPICS, Loopline, Run, cancel_event, goal_event
from loopline.sdk._fork import fork_run
from loopline.sdk._humans import (
    CommandRefusedError,
    Decider,
    check_decision,
    check_steering,
    command_event,
    decided,
    decision,
)
from loopline.sdk._reads import MemoryReads

__all__ = [
    "FOLLOWED_TOPICS",
    "Approval",
    "CommandRefusedError",
    "Decider",
    "Divergence",
    "EventStream",
    "Loopline",
    "MemoryReads",
    "NoGoalError",
    "Replay",
    "Rerun",
    "Run",
    "StepNotReachedError",
    "TextChunk",
    "cancel_event",
    "check_decision",
    "check_steering",
    "command_event",
    "decided",
    "decision",
    "fork_run",
    "goal_event",
    "replay_run",
    "rerun_run",
]
