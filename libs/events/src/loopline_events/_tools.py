"""Events of a tool call's outcome."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from loopline_events._envelope import Payload
from loopline_events._steps import ArtifactRef, TokenUsage


class ToolErrorKind(StrEnum):
    """What kind of failure a tool call met; the model reads it and can adapt."""

    UNKNOWN_TOOL = "unknown_tool"
    FORBIDDEN = "forbidden"
    INVALID_ARGUMENTS = "invalid_arguments"
    TIMEOUT = "timeout"
    EXECUTION = "execution"
    UNKNOWN_OUTCOME = "unknown_outcome"
    TOO_LARGE = "too_large"
    CHILD_FAILED = "child_failed"
    """A delegated sub-task's run failed or was cancelled."""
    DENIED = "denied"
    """A person denied the held call (or no one approved it in time)."""
    GUARD = "guard"
    """A guard refused the call or its output."""


class ToolError(BaseModel):
    """A typed error the model can read."""

    model_config = ConfigDict(frozen=True)

    kind: ToolErrorKind = Field(description="What kind of failure.")
    message: str = Field(description="What went wrong, for the model and a human.")
    retryable: bool = Field(default=False, description="Whether calling again could succeed.")


class Spend(BaseModel):
    """What a call spent of its run's budget beyond the tool itself: a delegated child run's
    steps, tokens and cost."""

    model_config = ConfigDict(frozen=True)

    steps: int = Field(default=0, ge=0, description="Model steps the child took.")
    usage: TokenUsage = Field(default_factory=TokenUsage, description="Tokens it spent.")
    cost_usd: float = Field(default=0.0, ge=0, description="What they cost.")


class ToolCallSucceeded(Payload):
    """A tool call returned a result."""

    TYPE = "ToolCallSucceeded"

    call_id: str = Field(description="The call this answers.")
    tool: str = Field(description="Name of the tool.")
    output: str = Field(
        description="The tool's output, as text the model reads (empty when it is an artifact)."
    )
    artifact: ArtifactRef | None = Field(
        default=None,
        description="Set when the output is too large to travel inline: it was stored whole "
        "in the artifact store, under this reference.",
    )
    attempts: int = Field(default=1, ge=1, description="Tries it took.")
    duration_ms: float = Field(default=0.0, ge=0, description="Time of the successful try.")
    spent: Spend | None = Field(
        default=None,
        description="Set on a `delegate` call's result: what the child run spent, which counts "
        "against this run's budget.",
    )


class ToolCallFailed(Payload):
    """A tool call failed for good (after its retries)."""

    TYPE = "ToolCallFailed"

    call_id: str = Field(description="The call this answers.")
    tool: str = Field(description="Name of the tool.")
    error: ToolError = Field(description="Why it failed.")
    attempts: int = Field(default=1, ge=1, description="Tries made.")
    spent: Spend | None = Field(
        default=None,
        description="Set on a `delegate` call's result: what the child run spent, which counts "
        "against this run's budget.",
    )


class DelegationStarted(Payload):
    """A `delegate` call started its child run: the parent's step waits for the child's end,
    which memory then publishes as the call's result. Recovery's watchdog reads it as a wait
    (until `until`, the child's deadline), not a stall."""

    TYPE = "DelegationStarted"

    call_id: str = Field(description="The `delegate` call.")
    child_run_id: str = Field(description="The run it started.")
    agent: str = Field(description="The child's agent profile.")
    until: AwareDatetime = Field(description="The child's deadline: the wait ends by then.")
