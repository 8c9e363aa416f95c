"""`complete_with_retries` around adapters that fail as told: what is retried, how long it
waits, when it gives up."""

from __future__ import annotations

import asyncio

import pytest
from loopline_events import Message, TokenUsage
from loopline_planner.adapters.models import (
    ModelError,
    ModelReply,
    ModelRequest,
    complete_with_retries,
)

CONTEXT = ModelRequest(
    agent="default", model="scripted", messages=(Message(role="user", content="hi"),)
)
ANSWER = ModelReply(final_answer="hello", usage=TokenUsage(prompt_tokens=3, completion_tokens=1))


class Scripted:
    """An adapter that raises the scripted errors in turn, then answers; hangs on `hang`."""

    name = "scripted"

    def __init__(self, *outcomes: ModelError | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def complete(self, request: ModelRequest) -> ModelReply:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome == "hang":
            await asyncio.Event().wait()
        if isinstance(outcome, ModelError):
            raise outcome
        return ANSWER

    async def aclose(self) -> None:
        pass


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def busy(retry_after_s: float | None = None) -> ModelError:
    return ModelError("HTTP 429", retryable=True, retry_after_s=retry_after_s)


async def test_a_first_answer_takes_one_attempt_and_no_wait() -> None:
    model, sleep = Scripted(), Sleeps()
    assert await complete_with_retries(
        model, CONTEXT, max_attempts=3, timeout_s=1, sleep=sleep
    ) == (ANSWER, 1)
    assert sleep.waits == []


async def test_retryable_errors_are_retried_with_growing_jittered_waits() -> None:
    model, sleep = Scripted(busy(), busy(), busy()), Sleeps()
    reply, attempts = await complete_with_retries(
        model, CONTEXT, max_attempts=4, timeout_s=1, sleep=sleep
    )
    assert (reply, attempts, model.calls) == (ANSWER, 4, 4)
    assert len(sleep.waits) == 3
    assert all(0 <= wait <= 0.5 * 2**i for i, wait in enumerate(sleep.waits))


async def test_the_servers_retry_after_is_honoured_up_to_thirty_seconds() -> None:
    model, sleep = Scripted(busy(retry_after_s=2.5), busy(retry_after_s=600)), Sleeps()
    _, attempts = await complete_with_retries(
        model, CONTEXT, max_attempts=3, timeout_s=1, sleep=sleep
    )
    assert attempts == 3
    assert sleep.waits == [2.5, 30.0]


async def test_a_non_retryable_error_is_raised_at_once() -> None:
    model, sleep = Scripted(ModelError("HTTP 401", retryable=False)), Sleeps()
    with pytest.raises(ModelError, match="HTTP 401") as raised:
        await complete_with_retries(model, CONTEXT, max_attempts=4, timeout_s=1, sleep=sleep)
    assert not raised.value.retryable
    assert (model.calls, sleep.waits) == (1, [])


async def test_the_last_error_is_raised_when_the_attempts_run_out() -> None:
    errors = [ModelError(f"HTTP 50{i}", retryable=True) for i in range(3)]
    model, sleep = Scripted(*errors), Sleeps()
    with pytest.raises(ModelError, match="HTTP 502") as raised:
        await complete_with_retries(model, CONTEXT, max_attempts=3, timeout_s=1, sleep=sleep)
    assert raised.value.retryable
    assert (model.calls, len(sleep.waits)) == (3, 2)


async def test_an_attempt_over_its_timeout_is_a_retryable_error_and_is_retried() -> None:
    model, sleep = Scripted("hang", "hang"), Sleeps()
    reply, attempts = await complete_with_retries(
        model, CONTEXT, max_attempts=3, timeout_s=0.02, sleep=sleep
    )
    assert (reply, attempts, len(sleep.waits)) == (ANSWER, 3, 2)


async def test_timeouts_until_the_end_raise_a_timed_out_error() -> None:
    model = Scripted("hang", "hang")
    with pytest.raises(ModelError, match=r"timed out after 0\.02s") as raised:
        await complete_with_retries(model, CONTEXT, max_attempts=2, timeout_s=0.02, sleep=Sleeps())
    assert raised.value.retryable
    assert model.calls == 2


async def test_at_least_one_attempt_is_required() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await complete_with_retries(Scripted(), CONTEXT, max_attempts=0, timeout_s=1)


def test_a_model_error_shows_its_retry_policy() -> None:
    error = ModelError("HTTP 429", retryable=True, retry_after_s=1.5)
    assert str(error) == "HTTP 429"
    assert (error.retryable, error.retry_after_s) == (True, 1.5)
    assert "retryable=True" in repr(error)
    assert ModelError("bad", retryable=False).retry_after_s is None
