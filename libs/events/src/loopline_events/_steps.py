"""Events of one turn of the loop: the context assembled, the model's decision."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

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


class ArtifactRef(BaseModel):
    """Content stored once in the artifact store (a claim check), named by its digest."""

    model_config = ConfigDict(frozen=True)

    ref: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="`sha256:` and the content's digest."
    )
    chars: int = Field(ge=0, description="Length of the content, in characters.")
    tokens: int = Field(ge=0, description="Tokens of the content (o200k_base).")


class Message(BaseModel):
    """One message of a chat context, in the shape chat models take."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"] = Field(description="Who speaks.")
    content: str = Field(default="", description="The text.")
    tool_calls: tuple[ToolCall, ...] = Field(
        default=(), description="Tools an assistant message asked for."
    )
    tool_call_id: str | None = Field(default=None, description="The call a tool message answers.")
    artifact: ArtifactRef | None = Field(
        default=None,
        description="Set when the text is too large to travel inline: it is this stored "
        "artifact, and `content` is empty.",
    )

    @cached_property
    def text_chars(self) -> int:
        """Characters of its text and of its calls (name and JSON arguments): what token
        estimates count. Kept once worked out: a run's history is estimated at every step."""
        return len(self.content) + sum(
            len(c.tool) + len(json.dumps(c.arguments)) for c in self.tool_calls
        )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; what was worked out from the original's fields is worked out again."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("text_chars", None)
        return copied


class Cut(BaseModel):
    """A message a request shows in part: its first characters, then a note saying so."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="Position of the message in the run's history.")
    chars: int = Field(ge=0, description="How many of its characters are shown.")


class Window(BaseModel):
    """Which messages of a run's history a model request holds, in order: the first `head`,
    then `note` (if any) standing in for the ones left out, then every message from `start`
    on; the messages named in `cuts` are shown in part."""

    model_config = ConfigDict(frozen=True)

    head: int = Field(ge=0, description="Messages always shown: system prompts, the goal.")
    start: int = Field(ge=0, description="First message shown after the head (and the note).")
    end: int | None = Field(
        default=None, ge=0, description="Where the shown messages stop (None: at the last)."
    )
    note: Message | None = Field(
        default=None,
        description="Stands in for the messages between the head and `start`: a marker "
        "saying they were left out, or their summary.",
    )
    cuts: tuple[Cut, ...] = Field(default=(), description="Messages shown in part.")


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

    prompt_tokens: int = Field(
        default=0,
        ge=0,
        description="Tokens read, all of them (those read from and written to "
        "the provider's prompt cache included).",
    )
    completion_tokens: int = Field(default=0, ge=0, description="Tokens written.")
    cached_tokens: int = Field(
        default=0,
        ge=0,
        description="Of the tokens read, those the provider served from its prompt cache "
        "(billed at its cached-input price).",
    )
    cache_write_tokens: int = Field(
        default=0,
        ge=0,
        description="Of the tokens read, those the provider wrote to its prompt cache (billed "
        "at its cache-write price, where it has one).",
    )

    @property
    def total_tokens(self) -> int:
        """Tokens read and written."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def uncached_prompt_tokens(self) -> int:
        """Tokens read at the full input price: neither read from nor written to the cache."""
        return max(0, self.prompt_tokens - self.cached_tokens - self.cache_write_tokens)

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


class ContextAssembled(MemoryOutput):
    """Memory assembled what the model needs for the next step of a run.

    By reference: the run's history is the messages of all its contexts' `appended`, in
    order; this one carries only what is new since the run's previous context (large texts as
    artifacts), and the `window` of the history the request holds. Its size depends on what
    is new, not on the step or the context's budget. The planner keeps each run's history and
    builds the request (`loopline_events.request_messages`).
    """

    TYPE = "ContextAssembled"
    VERSION = 2

    agent: str = Field(description="Agent profile of the run.")
    model: str = Field(description="Model the profile names.")
    base: int = Field(
        default=0, ge=0, description="Messages of the run's history before `appended`."
    )
    appended: tuple[Message, ...] = Field(
        default=(), description="Messages new to the run's history since its previous context."
    )
    window: Window | None = Field(
        default=None,
        description="What of the history the request holds; None: all of it, as it is.",
    )
    tools: tuple[ToolSpec, ...] = Field(default=(), description="Tools the model may call.")
    purpose: Literal["step", "summary"] = Field(
        default="step",
        description="`summary`: not a step of the agent's; the model is asked to summarise "
        "the window (the run's profile compacts by summary), and its answer becomes the "
        "note standing in for those messages.",
    )
    instruction: str = Field(
        default="", description="A last user message the request ends with (summaries)."
    )

    @property
    def length(self) -> int:
        """The history's length with this context's messages."""
        return self.base + len(self.appended)


def upcast_context_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """A version 1 context carried its whole (compacted) conversation in `messages`: as a
    history of exactly those messages, shown whole."""
    rest = {k: v for k, v in payload.items() if k != "messages"}
    return {**rest, "base": 0, "appended": payload.get("messages", [])}


MAX_TOOL_CALLS = 64
"""Most tool calls one decision may make: more is no model's plan but a flood."""


class ModelDecided(Payload):
    """The model decided: call tools, or give the final answer."""

    TYPE = "ModelDecided"

    agent: str = Field(default="default", description="Agent profile of the run.")
    model: str = Field(description="Model that decided.")
    tool_calls: tuple[ToolCall, ...] = Field(
        default=(),
        max_length=MAX_TOOL_CALLS,
        description=f"Tools to call now (at most {MAX_TOOL_CALLS} at once).",
    )
    final_answer: str | None = Field(default=None, description="The answer, when done.")
    usage: TokenUsage = Field(default_factory=TokenUsage, description="Tokens of this call.")
    latency_ms: float = Field(default=0.0, ge=0, description="How long the model took.")
    fallback_from: str | None = Field(
        default=None,
        description="Set when the context's model was unavailable (after its retries) and a "
        "fallback model of the profile decided: the model asked first. `model` is the one "
        "that answered.",
    )

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


class DelayReason(StrEnum):
    """Why a model call waits before it is made."""

    RATE_LIMIT = "rate_limit"
    """The provider's, the model's or the tenant's requests or tokens per minute are spent."""
    PROVIDER_BUSY = "provider_busy"
    """The provider answered 429 or 529 and asked every caller to hold off (Retry-After)."""
    QUOTA = "quota"
    """The tenant spent its tokens or cost for the hour or the day; its profile pauses runs."""


class ModelCallDelayed(Payload):
    """The step's model call waits for capacity: the run is waiting, not stalled.

    The planner publishes it when a call must wait longer than a moment, and again if a later
    wait of the same step is longer than announced; the step's `ModelDecided` (or
    `ModelFailed`) follows. Recovery's watchdog gives the run until `until` plus its step
    timeout.
    """

    TYPE = "ModelCallDelayed"

    model: str = Field(description="The model whose call waits.")
    reason: DelayReason = Field(description="What it waits for.")
    until: AwareDatetime = Field(description="When the call is expected to be made.")
    message: str = Field(default="", max_length=2_000, description="A sentence for a human.")
