"""Events of one turn of the loop: the context assembled, the model's decision."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loopline_events._envelope import MemoryOutput, Payload


class ToolCall(BaseModel):
    """One tool the model asked to call, with its arguments."""

    model_config = ConfigDict(frozen=True)

    call_id: str = Field(min_length=1, max_length=128, description="Unique within the run.")
    tool: str = Field(min_length=1, max_length=128, description="Name of the tool.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments, as JSON.")
    arguments_error: str | None = Field(
        default=None,
        description="Set when the model's arguments were not a JSON object; the tool is then "
        "not run and the model is told why.",
    )


class Message(BaseModel):
    """One message of a chat context, in the shape chat models take."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"] = Field(description="Who speaks.")
    content: str = Field(default="", description="The text.")
    tool_calls: tuple[ToolCall, ...] = Field(
        default=(), description="Tools an assistant message asked for."
    )
    tool_call_id: str | None = Field(default=None, description="The call a tool message answers.")


class ToolSpec(BaseModel):
    """A tool as the model sees it: name, description and JSON Schema of its arguments."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Name of the tool.")
    description: str = Field(default="", description="What it does, for the model.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="JSON Schema of its arguments."
    )


class TokenUsage(BaseModel):
    """Tokens a model call (or a whole run) consumed."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = Field(default=0, ge=0, description="Tokens read.")
    completion_tokens: int = Field(default=0, ge=0, description="Tokens written.")

    @property
    def total_tokens(self) -> int:
        """Tokens read and written."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ContextAssembled(MemoryOutput):
    """Memory assembled what the model needs for the next step of a run."""

    TYPE = "ContextAssembled"

    agent: str = Field(description="Agent profile of the run.")
    model: str = Field(description="Model the profile names.")
    messages: tuple[Message, ...] = Field(description="The conversation so far.")
    tools: tuple[ToolSpec, ...] = Field(default=(), description="Tools the model may call.")


class ModelDecided(Payload):
    """The model decided: call tools, or give the final answer."""

    TYPE = "ModelDecided"

    agent: str = Field(default="default", description="Agent profile of the run.")
    model: str = Field(description="Model that decided.")
    tool_calls: tuple[ToolCall, ...] = Field(default=(), description="Tools to call now.")
    final_answer: str | None = Field(default=None, description="The answer, when done.")
    usage: TokenUsage = Field(default_factory=TokenUsage, description="Tokens of this call.")
    latency_ms: float = Field(default=0.0, ge=0, description="How long the model took.")

    @model_validator(mode="after")
    def _one_outcome(self) -> Self:
        if (self.final_answer is None) == (not self.tool_calls):
            raise ValueError("a decision has either tool calls or a final answer, not both")
        return self


class ModelFailed(Payload):
    """The model could not decide (after retries): the run cannot go on from this step."""

    TYPE = "ModelFailed"

    model: str = Field(description="Model that failed.")
    error: str = Field(description="What went wrong, for a human.")
    retryable: bool = Field(default=False, description="Whether a later retry could help.")
    attempts: int = Field(default=1, ge=1, description="Calls made.")
