"""What a tool is: its effect class, retry policy, calling context and typed failure."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from loopline_events import ArtifactRef, Backoff, LooplineError, ToolErrorKind, ToolSpec
from pydantic import BaseModel

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Tool names chat model APIs accept for function calling."""


class Effect(StrEnum):
    """What calling a tool does to the world; it decides what may be retried."""

    PURE = "pure"
    """No effect at all: calling again is always safe."""
    IDEMPOTENT = "idempotent"
    """Calling twice does what calling once does (reads, upserts keyed by the call)."""
    SIDE_EFFECT = "side_effect"
    """Calling twice may do it twice: retried only when the tool says nothing happened."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a retryable failure is tried again."""

    max_attempts: int = 3
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("backoffs must not be negative")

    @property
    def waits(self) -> Backoff:
        """The waits between attempts: exponential with full jitter (so that many callers
        failing together do not retry together), capped at `max_backoff_s`."""
        return Backoff(base_s=self.initial_backoff_s, cap_s=self.max_backoff_s)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); the wait the
        failure asked for (`retry_after`), when it asked, within the cap."""
        return self.waits.delay(max(attempt, 1), retry_after=retry_after)


DEFAULT_RETRY = RetryPolicy()
"""Three attempts, 0.1 s to 2 s apart."""


class ArtifactReader(Protocol):
    """Reads content stored in the artifact store (loopline_artifacts.ArtifactStore)."""

    async def read(self, ref: str, offset: int = 0, length: int | None = None) -> str:
        """`length` characters of the content under `ref`, from `offset`."""
        ...

    async def describe(self, ref: str) -> ArtifactRef | None:
        """The stored content's reference (size, tokens); None if it is not stored."""
        ...


@dataclass(frozen=True)
class ToolContext:
    """Who is calling a tool, and what the tool may do for them."""

    run_id: str
    call_id: str
    tenant: str = "default"
    agent: str = "default"
    allow_private_networks: bool = False
    artifacts: ArtifactReader | None = None
    """Where large outputs are stored (`read_artifact` reads them)."""

    @property
    def idempotency_key(self) -> str:
        """A key that is the same for every retry and redelivery of this one call.

        Side-effecting tools pass it to the systems they change, so a repeat is recognised.
        """
        return f"{self.run_id}:{self.call_id}"


class ToolFailure(LooplineError):  # noqa: N818 - a failure the model reads, not a bug
    """Raised by a tool for a failure the model should read.

    `retryable=True` asserts that calling again could succeed; for a side-effecting tool it
    also asserts that nothing happened, since only then is a retry safe. `retry_after`: how
    long the service behind the tool asked to be left alone, when it asked.
    """

    def __init__(
        self,
        kind: ToolErrorKind,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.kind = kind
        self.message = message


Reconcile = Callable[[Any, ToolContext], Awaitable[str | None]]
"""`async def reconcile(args: SomeArgsModel, ctx: ToolContext) -> str | None`."""


@dataclass(frozen=True)
class Tool:
    """A tool: its arguments model, the async function that runs it, and how to run it."""

    name: str
    description: str
    args_model: type[BaseModel]
    fn: Callable[[Any, ToolContext], Awaitable[str]] = field(repr=False)
    effect: Effect = Effect.PURE
    timeout_s: float = 10.0
    retry: RetryPolicy = DEFAULT_RETRY
    reconcile: Reconcile | None = field(default=None, repr=False)
    """For a side-effecting tool: after a crash left a call started but not finished, find out
    what became of it. Return the call's output when the effect happened, None when it surely
    did not (the call is then run), or raise when it cannot tell (the run is told the outcome
    is unknown). Without it, such a call is always reported as an unknown outcome."""
    parameters: dict[str, Any] | None = field(default=None, repr=False)
    """The JSON Schema of the arguments shown to the model, when not the arguments model's
    (a tool of an MCP server brings its own; its `args_model` then accepts any object)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_NAME.pattern}")
        if not (isinstance(self.args_model, type) and issubclass(self.args_model, BaseModel)):
            raise TypeError(f"tool {self.name!r}: args_model must be a pydantic BaseModel class")
        if self.timeout_s <= 0:
            raise ValueError(f"tool {self.name!r}: timeout_s must be positive")

    def spec(self) -> ToolSpec:
        """The tool as the model sees it."""
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters=self.parameters
            if self.parameters is not None
            else self.args_model.model_json_schema(),
        )
