"""`run_tool`: validation, deadlines, retries only where safe, and typed errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from loopline_events import ToolError, ToolErrorKind
from loopline_tools import (
    Effect,
    RetryPolicy,
    Tool,
    ToolContext,
    ToolFailure,
    ToolOutcome,
    run_tool,
)
from pydantic import BaseModel, Field

CTX = ToolContext(run_id="run-1", call_id="call-7")
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.5, max_backoff_s=1.0)


class AddArgs(BaseModel):
    a: int
    b: int = Field(ge=0)


class Script:
    """A tool body that plays the given steps, one per attempt, and counts its calls."""

    def __init__(self, *steps: Callable[[], Awaitable[object]]) -> None:
        self.steps = list(steps)
        self.calls = 0

    async def __call__(self, args: AddArgs, ctx: ToolContext) -> str:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        return await step()  # type: ignore[return-value]  # some steps return non-str on purpose


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def returns(value: object) -> Callable[[], Awaitable[object]]:
    async def step() -> object:
        return value

    return step


def raises(exc: BaseException) -> Callable[[], Awaitable[object]]:
    async def step() -> object:
        raise exc

    return step


async def hangs() -> object:
    await asyncio.sleep(30)
    return "too late"


def make(script: Script, effect: Effect = Effect.PURE, timeout_s: float = 10.0) -> Tool:
    return Tool(
        name="add",
        description="Add two numbers.",
        args_model=AddArgs,
        fn=script,
        effect=effect,
        timeout_s=timeout_s,
        retry=FAST_RETRY,
    )


async def run(tool: Tool, sleep: FakeSleep | None = None, **arguments: object) -> ToolOutcome:
    return await run_tool(tool, {"a": 1, "b": 2, **arguments}, CTX, sleep=sleep or FakeSleep())


async def test_a_successful_call() -> None:
    script = Script(returns("3"))
    outcome = await run(make(script))
    assert outcome.ok
    assert (outcome.output, outcome.error, outcome.attempts) == ("3", None, 1)
    assert 0 <= outcome.duration_ms < 1000
    assert script.calls == 1


async def test_invalid_arguments_are_listed_and_the_tool_is_not_run() -> None:
    script = Script(returns("never"))
    outcome = await run_tool(make(script), {"a": "one", "b": -1}, CTX)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert not outcome.error.retryable
    assert outcome.error.message == (
        "invalid arguments for add: a: Input should be a valid integer, unable to parse "
        "string as an integer; b: Input should be greater than or equal to 0"
    )
    assert outcome.attempts == 1
    assert script.calls == 0


async def test_missing_arguments_are_named() -> None:
    outcome = await run_tool(make(Script(returns("x"))), {}, CTX)
    assert outcome.error is not None
    assert "a: Field required" in outcome.error.message
    assert "b: Field required" in outcome.error.message


async def test_arguments_that_were_not_json_are_not_run() -> None:
    script = Script(returns("never"))
    outcome = await run_tool(make(script), {}, CTX, arguments_error="not a JSON object: '{a'")
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert outcome.error.message == "not a JSON object: '{a'"
    assert script.calls == 0


async def test_a_pure_tool_that_times_out_is_retried_then_reported() -> None:
    sleep = FakeSleep()
    script = Script(hangs)
    outcome = await run(make(script, timeout_s=0.01), sleep)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.TIMEOUT
    assert outcome.error.retryable
    assert "within 0.01 s" in outcome.error.message
    assert outcome.attempts == script.calls == 3
    assert len(sleep.waits) == 2


async def test_a_side_effect_that_times_out_has_an_unknown_outcome_and_is_not_retried() -> None:
    sleep = FakeSleep()
    script = Script(hangs)
    outcome = await run(make(script, Effect.SIDE_EFFECT, timeout_s=0.01), sleep)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.UNKNOWN_OUTCOME
    assert not outcome.error.retryable
    assert "may or may not have happened" in outcome.error.message
    assert outcome.attempts == script.calls == 1
    assert sleep.waits == []


async def test_a_retryable_failure_is_retried_with_backoff_until_it_succeeds() -> None:
    sleep = FakeSleep()
    busy = ToolFailure(ToolErrorKind.EXECUTION, "busy", retryable=True)
    script = Script(raises(busy), raises(busy), returns("3"))
    outcome = await run(make(script, Effect.IDEMPOTENT), sleep)
    assert (outcome.output, outcome.attempts, script.calls) == ("3", 3, 3)
    assert len(sleep.waits) == 2
    assert 0 <= sleep.waits[0] <= 0.5  # full jitter under 0.5 * 2**0
    assert 0 <= sleep.waits[1] <= 1.0  # under 0.5 * 2**1, capped at 1.0


async def test_retries_stop_at_max_attempts_and_keep_the_error() -> None:
    busy = ToolFailure(ToolErrorKind.EXECUTION, "still busy", retryable=True)
    script = Script(raises(busy))
    outcome = await run(make(script))
    assert outcome.error is not None
    assert (outcome.error.kind, outcome.error.message) == (ToolErrorKind.EXECUTION, "still busy")
    assert outcome.error.retryable
    assert outcome.attempts == script.calls == FAST_RETRY.max_attempts


async def test_a_side_effect_is_retried_when_it_says_nothing_happened() -> None:
    refused = ToolFailure(ToolErrorKind.EXECUTION, "rate limited, nothing sent", retryable=True)
    script = Script(raises(refused), returns("sent"))
    outcome = await run(make(script, Effect.SIDE_EFFECT))
    assert (outcome.output, outcome.attempts) == ("sent", 2)


@pytest.mark.parametrize("effect", list(Effect))
async def test_an_unexpected_exception_is_an_execution_error_never_retried(effect: Effect) -> None:
    sleep = FakeSleep()
    script = Script(raises(ValueError("boom")), returns("3"))
    outcome = await run(make(script, effect), sleep)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert outcome.error.message == "ValueError: boom"
    assert not outcome.error.retryable
    assert outcome.attempts == script.calls == 1
    assert sleep.waits == []


async def test_a_failure_keeps_the_kind_the_tool_chose() -> None:
    script = Script(raises(ToolFailure(ToolErrorKind.FORBIDDEN, "not for you")))
    outcome = await run(make(script))
    assert outcome.error is not None
    assert (outcome.error.kind, outcome.error.message) == (ToolErrorKind.FORBIDDEN, "not for you")
    assert outcome.attempts == 1


async def test_a_timeout_error_of_the_tool_itself_is_not_a_deadline() -> None:
    script = Script(raises(TimeoutError("socket read timed out")))
    outcome = await run(make(script))
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert outcome.error.message == "TimeoutError: socket read timed out"


async def test_a_non_string_result_is_an_execution_error() -> None:
    outcome = await run(make(Script(returns(3))))
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert outcome.error.message == "add returned int, not str"


async def test_a_long_output_is_kept_whole() -> None:
    """The executor stores it as an artifact; nothing is cut on the way."""
    outcome = await run(make(Script(returns("x" * 5_000_000))))
    assert outcome.output == "x" * 5_000_000


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()

    async def waits() -> object:
        started.set()
        await asyncio.sleep(30)
        return "never"

    task = asyncio.create_task(run(make(Script(waits))))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_backoff_is_jittered_under_an_exponential_cap() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=0.1, max_backoff_s=2.0)
    for attempt in range(1, 10):
        ceiling = min(2.0, 0.1 * 2 ** (attempt - 1))
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(0 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jittered, not fixed
    assert 0 <= policy.backoff(10_000) <= 2.0  # no overflow far out


def test_a_retry_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(initial_backoff_s=-1)


def test_the_idempotency_key_is_stable_for_one_call() -> None:
    again = ToolContext(run_id="run-1", call_id="call-7", tenant="acme")
    assert CTX.idempotency_key == again.idempotency_key == "run-1:call-7"
    assert ToolContext(run_id="run-1", call_id="call-8").idempotency_key != CTX.idempotency_key


def test_an_outcome_is_ok_only_without_error() -> None:
    assert ToolOutcome(output="x", error=None, attempts=1, duration_ms=1.0).ok
    error = ToolError(kind=ToolErrorKind.TIMEOUT, message="late", retryable=True)
    assert not ToolOutcome(output=None, error=error, attempts=2, duration_ms=1.0).ok
