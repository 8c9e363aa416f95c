"""What to do with a side-effecting call, given what the ledger knew when it was claimed.

The ledger records a side-effecting call as started before it runs and as finished, with its
outcome, after. A call met again (a redelivered decision, a re-drive, a replica that took over)
is never silently run twice: a finished one re-emits its recorded outcome, a started-but-
unfinished one (a crash fell between start and finish) is reconciled by the tool's hook or
reported to the run as an unknown outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from loopline_events import (
    GuardTripped,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
)

from loopline_tool_executor.domain.guarded import Stopped

Outcome = ToolCallSucceeded | ToolCallFailed | Stopped
"""What a tool call came to, as the run is told."""


class Prior(StrEnum):
    """The ledger's record of a call at the moment it was claimed."""

    NEW = "new"
    """Not seen before: now recorded as started."""
    STARTED = "started"
    """Started earlier and never finished: a crash, or a replica still running it."""
    FINISHED = "finished"
    """Done, with its outcome recorded."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The ledger's answer to "may I run this call?"."""

    prior: Prior
    outcome: dict[str, Any] | None = None
    """The recorded outcome (`outcome_record`), when finished."""


class Action(StrEnum):
    """What the executor does with a claimed call."""

    RUN = "run"
    REPLAY = "replay"
    RECONCILE = "reconcile"
    REPORT_UNKNOWN = "report_unknown"


def next_action(claim: Claim, *, can_reconcile: bool) -> Action:
    """Run a new call, replay a finished one, and never run an unfinished one blind."""
    if claim.prior is Prior.NEW:
        return Action.RUN
    if claim.prior is Prior.FINISHED:
        return Action.REPLAY
    return Action.RECONCILE if can_reconcile else Action.REPORT_UNKNOWN


def unknown_outcome(call_id: str, tool: str, detail: str) -> ToolCallFailed:
    """The failure a run is told of when nobody can say whether the effect happened."""
    message = (
        f"{tool} was started earlier but never reported finishing ({detail}); it has side "
        "effects, so it was not run again: check its effect before asking for it again"
    )
    return ToolCallFailed(
        call_id=call_id,
        tool=tool,
        error=ToolError(kind=ToolErrorKind.UNKNOWN_OUTCOME, message=message),
    )


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """The outcome as the ledger stores it (JSON); a guard's trip with the failure it made,
    so a replay tells the run of both."""
    if isinstance(outcome, Stopped):
        tripped = outcome.tripped.model_dump(mode="json")
        return {**outcome_record(outcome.failed), "tripped": tripped}
    return {"type": outcome.TYPE, "payload": outcome.model_dump(mode="json")}


def outcome_of(record: dict[str, Any]) -> Outcome:
    """The outcome a ledger record holds."""
    if "tripped" in record:
        failed = ToolCallFailed.model_validate(record["payload"])
        return Stopped(GuardTripped.model_validate(record["tripped"]), failed)
    if record["type"] == ToolCallSucceeded.TYPE:
        return ToolCallSucceeded.model_validate(record["payload"])
    return ToolCallFailed.model_validate(record["payload"])
