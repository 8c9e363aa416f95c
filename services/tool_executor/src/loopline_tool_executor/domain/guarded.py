"""A tool call a guard stopped, and what the run is told of it (docs/decisions/0028).

A before-tool guard refuses a call, or an after-tool guard withholds its output: either way
the call's result is a `ToolCallFailed` of kind `guard`, and a `GuardTripped` published just
before it says which guard, why, and what follows (`tell`: the model reads the failure;
`fail`: memory fails the run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loopline_events import (
    ApprovalRequested,
    GuardHook,
    GuardTripped,
    Payload,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
)
from loopline_runtime import Tripped


@dataclass(frozen=True, slots=True)
class Stopped:
    """A call a guard stopped: the trip, then the call's failure."""

    tripped: GuardTripped
    failed: ToolCallFailed


def stopped(call: ToolCall, tripped: Tripped, attempts: int = 1) -> Stopped:
    """What the run is told of `call`, which `tripped` stopped."""
    done = "refused the call" if tripped.hook is GuardHook.BEFORE_TOOL else "withheld the output"
    event = tripped.event(call)
    message = f"guard {event.guard!r} {done}: {event.reason}"
    failed = ToolCallFailed(
        call_id=call.call_id,
        tool=call.tool,
        error=ToolError(kind=ToolErrorKind.GUARD, message=message),
        attempts=attempts,
    )
    return Stopped(event, failed)


def published(
    answers: Sequence[ToolCallSucceeded | ToolCallFailed | Stopped | ApprovalRequested],
) -> list[tuple[int, Payload]]:
    """The events answering a decision's calls, in order, each with its index among the
    decision's outputs (the seed of its event id): a call's result has the call's position,
    as it had before guards; a trip comes just before its call's failure, numbered after
    every result."""
    events: list[tuple[int, Payload]] = []
    for i, answer in enumerate(answers):
        if isinstance(answer, Stopped):
            events.append((len(answers) + i, answer.tripped))
            events.append((i, answer.failed))
        else:
            events.append((i, answer))
    return events
