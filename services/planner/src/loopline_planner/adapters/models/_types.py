"""What every model adapter speaks: the reply, the error and the adapter protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from loopline_events import Message, TokenUsage, ToolCall, ToolSpec


@dataclass(frozen=True)
class ModelRequest:
    """What a model is asked: the messages of the request and the tools it may call.

    The planner builds it from a context and the run's history it holds; adapters read
    nothing else.
    """

    agent: str
    model: str
    """The model the run's profile names (`demo`, `openai:gpt-4o`, ...)."""
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class ModelReply:
    """A model's decision for one step: tools to call, or the final answer, and its usage."""

    tool_calls: tuple[ToolCall, ...] = ()
    final_answer: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)


class ModelError(Exception):
    """A model call failed; `retryable` says whether calling again could help.

    The adapter that raises it decides: rate limits (429), server errors (5xx), 408, 409,
    timeouts and lost connections are retryable; other 4xx and malformed replies are not,
    since the same request would fail the same way. `retry_after_s` is the wait the server
    asked for, when it asked.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s

    def __repr__(self) -> str:
        return (
            f"ModelError({str(self)!r}, retryable={self.retryable}, "
            f"retry_after_s={self.retry_after_s})"
        )


@runtime_checkable
class ModelAdapter(Protocol):
    """A chat model behind one interface: a context in, a decision out."""

    name: str
    """The model's name as it appears in `ModelDecided.model`."""

    async def complete(self, request: ModelRequest) -> ModelReply:
        """The model's decision for `request`; `ModelError` when it cannot give one."""
        ...

    async def aclose(self) -> None:
        """Release connections; the adapter is not used afterwards."""
        ...
