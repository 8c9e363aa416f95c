"""What every model adapter speaks: the request, the reply, the error and the adapter protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from loopline_events import LooplineError, TokenUsage, ToolCall

from loopline_planner.domain.requests import ModelRequest

__all__ = ["ModelAdapter", "ModelError", "ModelReply", "ModelRequest", "TextSink", "provider_of"]

TextSink = Callable[[str], Awaitable[None]]
"""Receives the reply's text while the model writes it, a piece at a time."""


@dataclass(frozen=True)
class ModelReply:
    """A model's decision for one step: tools to call, or the final answer, and its usage."""

    tool_calls: tuple[ToolCall, ...] = ()
    final_answer: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)


class ModelError(LooplineError):
    """A model call failed; `retryable` says whether calling again could help.

    The adapter that raises it decides: rate limits (429), overload (529), server errors
    (5xx), 408, 409, timeouts and lost connections are retryable; other 4xx and malformed
    replies are not, since the same request would fail the same way. `retry_after` is the wait
    the server asked for, when it asked.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ):
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status
        """The HTTP status the provider answered (529 for Anthropic's overload, also when it
        said so in the middle of a stream), when it answered one."""

    @property
    def rate_limited(self) -> bool:
        """The provider refused for load: 429, or Anthropic's 529 overloaded."""
        return self.status in (429, 529)


@runtime_checkable
class ModelAdapter(Protocol):
    """A chat model behind one interface: a request in, a decision out."""

    name: str
    """The model's id as it appears in `ModelDecided.model`."""

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        """The model's decision for `request`; `ModelError` when it cannot give one. With
        `on_text`, the reply's text is handed to it while the model writes."""
        ...

    async def aclose(self) -> None:
        """Release connections; the adapter is not used afterwards."""
        ...


def provider_of(model: str) -> str:
    """The provider part of a model id: `anthropic` of `anthropic:claude-sonnet-4-5`."""
    return model.partition(":")[0]
