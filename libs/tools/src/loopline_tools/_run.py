"""Run one tool call: validate, time out, retry what is safe to retry, and type every failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loopline_events import ToolError, ToolErrorKind
from pydantic import BaseModel, ValidationError

from loopline_tools._core import Effect, Tool, ToolContext, ToolFailure

_MAX_LISTED_PROBLEMS = 10


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call came to: an output or a typed error, after how many attempts."""

    output: str | None
    error: ToolError | None
    attempts: int
    duration_ms: float
    """Duration of the last attempt."""

    @property
    def ok(self) -> bool:
        """Whether the call returned an output."""
        return self.error is None


async def run_tool(
    tool: Tool,
    arguments: dict[str, Any],
    ctx: ToolContext,
    *,
    arguments_error: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ToolOutcome:
    """Run `tool` with `arguments` and never raise for the tool's sake.

    Invalid arguments are not run. Retryable failures are tried up to
    `tool.retry.max_attempts` times; a side-effecting tool is retried only when it raised a
    retryable `ToolFailure` itself, since a timeout or a crash may have left its effect done.
    `asyncio.CancelledError` propagates.
    """
    if arguments_error is not None:
        return _failed(ToolErrorKind.INVALID_ARGUMENTS, arguments_error)
    try:
        args = tool.args_model.model_validate(arguments)
    except ValidationError as exc:
        return _failed(ToolErrorKind.INVALID_ARGUMENTS, _describe(tool.name, exc))
    except Exception as exc:  # a model validator may raise anything
        message = f"invalid arguments for {tool.name}: {type(exc).__name__}: {exc}"
        return _failed(ToolErrorKind.INVALID_ARGUMENTS, message)
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        result = await _attempt(tool, args, ctx)
        duration_ms = (time.perf_counter() - started) * 1000.0
        if isinstance(result, str):
            return ToolOutcome(result, None, attempt, duration_ms)
        error, retry_after = result
        if not error.retryable or attempt >= tool.retry.max_attempts:
            return ToolOutcome(None, error, attempt, duration_ms)
        await sleep(tool.retry.backoff(attempt, retry_after))


async def _attempt(
    tool: Tool, args: BaseModel, ctx: ToolContext
) -> str | tuple[ToolError, float | None]:
    """One try: the output, or the error (retryable only where a retry is safe) and the wait
    the tool asked for before the next try."""
    deadline = asyncio.timeout(tool.timeout_s)
    try:
        async with deadline:
            output = await tool.fn(args, ctx)
    except ToolFailure as failure:
        error = ToolError(kind=failure.kind, message=failure.message, retryable=failure.retryable)
        return error, failure.retry_after
    except TimeoutError as exc:
        if not deadline.expired():  # the tool's own TimeoutError, not our deadline
            return _crashed(exc), None
        return _timed_out(tool), None
    except Exception as exc:
        return _crashed(exc), None
    if not isinstance(output, str):
        message = f"{tool.name} returned {type(output).__name__}, not str"
        return ToolError(kind=ToolErrorKind.EXECUTION, message=message), None
    return output


def _timed_out(tool: Tool) -> ToolError:
    late = f"{tool.name} did not finish within {tool.timeout_s:g} s"
    if tool.effect is Effect.SIDE_EFFECT:
        # It may have done its effect before the deadline: calling again could do it twice.
        message = f"{late}; it has side effects, which may or may not have happened"
        return ToolError(kind=ToolErrorKind.UNKNOWN_OUTCOME, message=message)
    return ToolError(kind=ToolErrorKind.TIMEOUT, message=late, retryable=True)


def _crashed(exc: Exception) -> ToolError:
    return ToolError(kind=ToolErrorKind.EXECUTION, message=f"{type(exc).__name__}: {exc}")


def _failed(kind: ToolErrorKind, message: str) -> ToolOutcome:
    # One attempt, rejected before the tool ran: results report at least one attempt.
    return ToolOutcome(None, ToolError(kind=kind, message=message), attempts=1, duration_ms=0.0)


def _describe(tool_name: str, exc: ValidationError) -> str:
    """`invalid arguments for calculator: expression: Field required; ...`."""
    problems = []
    for error in exc.errors(include_url=False)[:_MAX_LISTED_PROBLEMS]:
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    hidden = exc.error_count() - len(problems)
    if hidden > 0:
        problems.append(f"and {hidden} more")
    return f"invalid arguments for {tool_name}: " + "; ".join(problems)
