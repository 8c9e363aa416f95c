"""The state of one run, as memory folds it from the run's events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from loopline_events import Delegation, FailureReason, Message, Payload, Spend, TokenUsage
from pydantic import BaseModel, ConfigDict, Field


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Phase(StrEnum):
    """What a running run waits for."""

    RECALL = "recall"
    SUMMARY = "summary"
    DECISION = "decision"
    OBSERVATIONS = "observations"
    DONE = "done"


class ChildRun(BaseModel):
    """A sub-task this run delegated: the child run, and whether its end came back."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    run_id: str
    agent: str
    step: int
    ended: bool = False


class HeldCall(BaseModel):
    """A tool call of the current step that waits for a person's approval."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    tool: str
    arguments: dict[str, Any]
    effect: str
    policy: str = ""
    approvers: tuple[str, ...] = ()
    until: datetime
    on_timeout: Literal["deny", "fail"] = "deny"
    step: int
    requested_at: datetime


class DecidedCall(BaseModel):
    """A person's (or the timeout's) answer to a held call, as memory took it."""

    model_config = ConfigDict(frozen=True)

    @property
    def call_id(self) -> str:
        return self.request.call_id

    request: HeldCall
    approved: bool
    decided_by: str = ""
    reason: str = ""
    decided_at: datetime
    approval_id: UUID | None = Field(
        default=None,
        description="Id of the `ToolCallApproved` memory sent for it: the call's result "
        "must answer that event.",
    )


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
    max_tokens: int | None = Field(default=None, description="Token budget of the run.")
    max_cost_usd: float | None = Field(default=None, description="Cost budget of the run.")
    capped: tuple[str, ...] = Field(
        default=(),
        description="Limits the goal asked beyond its profile's, each capped to the profile's.",
    )
    price: str = Field(default="", description="Price table entry of the run's tokens.")
    context_budget: int = Field(default=32_000, description="Most tokens of a context.")
    compaction: Literal["truncate", "summarize"] = Field(
        default="truncate", description="What stands in for older steps a context leaves out."
    )
    no_progress_repeats: int = 3
    on_no_progress: Literal["nudge", "fail"] = "nudge"
    goal_event_id: str = Field(default="", description="Id of the goal (or fork) that started it.")
    started_at: datetime
    updated_at: datetime
    status: RunStatus = RunStatus.RUNNING
    phase: Phase = Phase.DECISION
    step: int = Field(default=0, description="Seq of the last context assembled.")
    context_id: UUID | None = Field(
        default=None,
        description="Id of the context memory issued for the current step: its decision must "
        "name it as its cause.",
    )
    messages: tuple[Message, ...] = Field(
        default=(), description="The run's history: every message, in order, never rewritten."
    )
    tokens: tuple[int, ...] = Field(default=(), description="Tokens of each message.")
    history_tokens: int = Field(default=0, description="Tokens of all messages.")
    head: int = Field(default=0, description="Messages through the goal: every context shows.")
    sent: int = Field(default=0, description="Messages the planner was sent (in contexts).")
    fixed_tokens: int = Field(default=0, description="Tokens of the tools' schemas.")
    summary: Message | None = Field(
        default=None, description="The model's summary of the messages before `summarized`."
    )
    summarized: int = Field(default=0, description="Messages the summary covers.")
    summarizing: tuple[int, int] = Field(
        default=(0, 0), description="Messages [from, to) a summary was asked for."
    )
    calls: tuple[str, ...] = Field(default=(), description="Calls of the step's decision.")
    received: tuple[Message, ...] = Field(
        default=(),
        description="Results of this step so far, by call id; a result may arrive before its "
        "decision, as they come from different topics.",
    )
    usage: TokenUsage = Field(default_factory=TokenUsage)
    last_usage: TokenUsage = Field(
        default_factory=TokenUsage, description="Tokens of the latest decision."
    )
    rounds: tuple[str, ...] = Field(
        default=(), description="Fingerprint of each step's calls and results, in step order."
    )
    nudged: bool = Field(default=False, description="The model was told it makes no progress.")
    wrapping_up: bool = Field(default=False, description="The model was asked to finish now.")
    answer: str | None = None
    parent_run_id: str | None = Field(default=None, description="The run this was forked from.")
    forked_at_step: int | None = Field(default=None, description="Steps copied from the parent.")
    forks: tuple[str, ...] = Field(default=(), description="Runs forked from this one, sorted.")
    delegated_by: Delegation | None = Field(
        default=None, description="Set on a sub-task: the run, step and call that started it."
    )
    children: tuple[ChildRun, ...] = Field(
        default=(), description="Sub-tasks this run delegated, in the order it started them."
    )
    delegated: Spend = Field(
        default_factory=Spend,
        description="What its ended sub-tasks spent: counted against this run's budget.",
    )
    inbox: tuple[Message, ...] = Field(
        default=(),
        description="What people told the run since its last context (RunSteered): joins the "
        "history before the next one.",
    )
    held: tuple[HeldCall, ...] = Field(
        default=(), description="Calls of the current step waiting for a person's approval."
    )
    decided: tuple[DecidedCall, ...] = Field(
        default=(), description="Held calls decided on, in the order they were."
    )
    failure: FailureReason | None = None
    failure_message: str = ""
    unannounced: tuple[UUID, ...] = Field(
        default=(),
        description="Inputs folded, in order, since memory's last context or result: the "
        "journal its next one carries.",
    )
    applied: tuple[str, ...] = Field(
        default=(),
        description="Ids of the latest events folded in, in order (a redelivered one is "
        "recognised by them; older ones are stale by their step).",
    )

    @property
    def pending_calls(self) -> tuple[str, ...]:
        """Calls of the current decision still without a result."""
        done = {m.tool_call_id for m in self.received}
        return tuple(c for c in self.calls if c not in done)

    @property
    def depth(self) -> int:
        """How deep the run lies under a run a user started (0: it is one)."""
        return self.delegated_by.depth if self.delegated_by else 0

    @property
    def finished(self) -> bool:
        return self.status is not RunStatus.RUNNING


class Emission(BaseModel):
    """An event the reducer asks to publish: of the run folded, or of another run memory
    owes it to (a sub-task's goal, a parent's result), at that run's step `seq`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    topic: str
    payload: Payload
    run_id: str | None = None
    seq: int | None = None


class RecallRequest(BaseModel):
    """Asks the handler to search long-term memory and publish what it found as the result of
    `call_id` (a `ToolCallSucceeded` of the `recall` tool), which memory then folds like any
    other result: the event on the topic is the record, so replays need no database."""

    model_config = ConfigDict(frozen=True)

    call_id: str
    query: str
    limit: int


class StoreArtifact(BaseModel):
    """Asks the handler to store a text too large to travel inline, before the event that
    references it is published (its reference is its digest: replays need no store)."""

    model_config = ConfigDict(frozen=True)

    text: str


class StoreMemory(BaseModel):
    """Asks the handler to keep a long-term memory of the run's tenant and agent."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["fact", "episode"]
    content: str


Request = RecallRequest | StoreMemory | StoreArtifact
"""Work the reducer asks of the handler that needs I/O."""
