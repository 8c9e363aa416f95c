"""Events of a tool call's outcome."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from loopline_events._envelope import Payload
from loopline_events._steps import ArtifactRef


class ToolErrorKind(StrEnum):
    """What kind of failure a tool call met; the model reads it and can adapt."""

    UNKNOWN_TOOL = "unknown_tool"
    FORBIDDEN = "forbidden"
    INVALID_ARGUMENTS = "invalid_arguments"
    TIMEOUT = "timeout"
    EXECUTION = "execution"
    UNKNOWN_OUTCOME = "unknown_outcome"
    TOO_LARGE = "too_large"


class ToolError(BaseModel):
    """A typed error the model can read."""

    model_config = ConfigDict(frozen=True)

    kind: ToolErrorKind = Field(description="What kind of failure.")
    message: str = Field(description="What went wrong, for the model and a human.")
    retryable: bool = Field(default=False, description="Whether calling again could succeed.")


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


class ToolCallFailed(Payload):
    """A tool call failed for good (after its retries)."""

    TYPE = "ToolCallFailed"

    call_id: str = Field(description="The call this answers.")
    tool: str = Field(description="Name of the tool.")
    error: ToolError = Field(description="Why it failed.")
    attempts: int = Field(default=1, ge=1, description="Tries made.")
