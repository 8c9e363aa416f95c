"""Events of a run's life: submitted, completed, failed, cancelled."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from loopline_events._envelope import MemoryOutput, Payload
from loopline_events._steps import TokenUsage


class Budget(BaseModel):
    """Limits of one run; unset limits come from the agent profile."""

    model_config = ConfigDict(frozen=True)

    max_steps: int | None = Field(default=None, ge=1, le=10_000, description="Most model steps.")
    max_tokens: int | None = Field(default=None, ge=1, description="Most tokens, all steps.")
    max_cost_usd: float | None = Field(default=None, ge=0, description="Most spend in USD.")
    deadline_s: float | None = Field(
        default=None, gt=0, description="Wall-clock limit of the run, in seconds."
    )


class Delegation(BaseModel):
    """Whose sub-task a run is: the parent run, the step and the `delegate` call that started
    it, and how deep it lies under the run a user started (that run's children are depth 1)."""

    model_config = ConfigDict(frozen=True)

    parent_run_id: str = Field(min_length=1, max_length=256, description="The parent run.")
    parent_step: int = Field(ge=1, description="The parent's step whose decision delegated.")
    call_id: str = Field(min_length=1, max_length=256, description="The `delegate` call.")
    depth: int = Field(ge=1, le=100, description="1 for a child of a user's run, and so on.")


class GoalSubmitted(Payload):
    """A user asked an agent to reach a goal: the first event of every run (a sub-task one
    agent delegated to another is a goal too, naming its parent)."""

    TYPE = "GoalSubmitted"

    goal: str = Field(min_length=1, max_length=100_000, description="What the agent should do.")
    agent: str = Field(
        default="default", min_length=1, max_length=128, description="Agent profile name."
    )
    budget: Budget = Field(default_factory=Budget, description="Limits overriding the profile's.")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Free-form labels carried with the run."
    )
    parent: Delegation | None = Field(
        default=None,
        description="Set on a child run started by another run's `delegate` call; only memory "
        "starts one (a client's goal naming a parent is refused).",
    )


class CancelRun(Payload):
    """A command: stop this run at its next step."""

    TYPE = "CancelRun"

    reason: str = Field(default="", max_length=2_000, description="Why it is cancelled.")
    requested_by: str = Field(default="", max_length=128, description="Who asked.")


class RunCompleted(MemoryOutput):
    """The model gave a final answer: the run succeeded."""

    TYPE = "RunCompleted"

    answer: str = Field(description="The agent's final answer.")
    steps: int = Field(ge=0, description="Model steps the run took.")
    usage: TokenUsage = Field(default_factory=TokenUsage, description="Tokens spent, all steps.")
    cost_usd: float = Field(
        default=0.0, ge=0, description="What the tokens cost, from memory's price table."
    )


class RejectionReason(StrEnum):
    """Why a goal was not taken."""

    DUPLICATE_RUN_ID = "duplicate_run_id"
    """Another goal started a run with this id already."""
    NOT_AUTHORIZED = "not_authorized"
    """Its sender may not submit goals for its tenant: it is unsigned, signed by a key memory
    does not know, altered since it was signed, or its signer acts for other tenants."""


class GoalRejected(Payload):
    """A goal (or fork) was not taken, and why (on agent.results, keyed by its run id); its
    `causation_id` names the goal, so its submitter knows the answer is its own."""

    TYPE = "GoalRejected"

    reason: RejectionReason = Field(description="Why.")
    message: str = Field(default="", description="A sentence for a human.")


class FailureReason(StrEnum):
    """Why a run failed; one word a dashboard can group by."""

    MAX_STEPS = "max_steps"
    DEADLINE = "deadline"
    BUDGET_EXHAUSTED = "budget_exhausted"
    NO_PROGRESS = "no_progress"
    STALLED = "stalled"
    MODEL_ERROR = "model_error"
    TOOL_ERROR = "tool_error"
    INVALID_GOAL = "invalid_goal"
    POISON = "poison"
    APPROVAL_TIMEOUT = "approval_timeout"
    """No one decided on a held tool call in time, and the profile fails the run then."""
    GUARD = "guard"
    """A guard tripped and says the run must end."""
    QUOTA_EXCEEDED = "quota_exceeded"
    """The tenant spent its tokens or cost for the hour or the day, and the run's profile
    fails runs over quota rather than pausing them."""


class RunFailed(MemoryOutput):
    """The run ended without an answer; `reason` says why, the partial work is kept."""

    TYPE = "RunFailed"

    reason: FailureReason = Field(description="Why the run failed.")
    message: str = Field(default="", description="A sentence for a human.")
    steps: int = Field(default=0, ge=0, description="Model steps taken before the end.")
    usage: TokenUsage = Field(default_factory=TokenUsage, description="Tokens spent, all steps.")
    cost_usd: float = Field(
        default=0.0, ge=0, description="What the tokens cost, from memory's price table."
    )


class FailRun(Payload):
    """A command: end this run now as failed, with this reason (on agent.control).

    Memory, the one writer of a run's end, folds it and answers with `RunFailed`, so its state,
    its stores and a replay agree that the run ended. Recovery sends it for a run whose message
    was parked, and its watchdog for a run that stalled or outlived its deadline.
    """

    TYPE = "FailRun"

    reason: FailureReason = Field(description="Why the run must fail.")
    message: str = Field(default="", max_length=4_000, description="A sentence for a human.")
    requested_by: str = Field(default="", max_length=128, description="Who asked.")
    at_step: int | None = Field(
        default=None,
        ge=0,
        description="Fail the run only if it is still at this step (the seq of its latest "
        "context); a run that moved on since ignores the command. None: whatever its step.",
    )


class RunCancelled(MemoryOutput):
    """The run was cancelled on request."""

    TYPE = "RunCancelled"

    reason: str = Field(default="", description="Why it was cancelled.")
    steps: int = Field(default=0, ge=0, description="Model steps taken before the end.")
