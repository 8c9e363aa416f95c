"""The state of one run, as memory folds it from the run's events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from loopline_events import FailureReason, Message, Payload, TokenUsage
from pydantic import BaseModel, ConfigDict, Field


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Phase(StrEnum):
    """What a running run waits for."""

    DECISION = "decision"
    OBSERVATIONS = "observations"
    DONE = "done"


class RunState(BaseModel):
    """Everything memory knows of a run; a pure function of the run's events."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    tenant: str
    agent: str
    goal: str
    model: str
    tools: tuple[str, ...]
    max_steps: int
    deadline_at: datetime | None
    started_at: datetime
    updated_at: datetime
    status: RunStatus = RunStatus.RUNNING
    phase: Phase = Phase.DECISION
    step: int = Field(default=0, description="Seq of the last context assembled.")
    messages: tuple[Message, ...] = ()
    calls: tuple[str, ...] = Field(default=(), description="Calls of the step's decision.")
    received: tuple[Message, ...] = Field(
        default=(),
        description="Results of this step so far, by call id; a result may arrive before its "
        "decision, as they come from different topics.",
    )
    usage: TokenUsage = Field(default_factory=TokenUsage)
    answer: str | None = None
    failure: FailureReason | None = None
    failure_message: str = ""
    applied: tuple[str, ...] = Field(
        default=(),
        description="Ids of the events folded in, sorted: the state does not depend "
        "on how events of different topics interleaved.",
    )

    @property
    def pending_calls(self) -> tuple[str, ...]:
        """Calls of the current decision still without a result."""
        done = {m.tool_call_id for m in self.received}
        return tuple(c for c in self.calls if c not in done)

    @property
    def finished(self) -> bool:
        return self.status is not RunStatus.RUNNING


class Emission(BaseModel):
    """An event the reducer asks to publish."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    topic: str
    payload: Payload
