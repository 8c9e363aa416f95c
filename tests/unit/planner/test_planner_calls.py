"""`Caller.decide` around adapters that fail as told: what is retried, how long it waits, when
it gives up, when it falls back to the next model (no limiter here: see the integration
tests for it)."""

from __future__ import annotations

import asyncio

import pytest
from loopline_events import Message, TokenUsage
from loopline_planner.adapters.models import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
    ModelSettings,
    TextSink,
)
from loopline_planner.calls import Caller, Decided

REQUEST = ModelRequest(
    agent="default", model="scripted", messages=(Message(role="user", content="hi"),)
)
ANSWER = ModelReply(final_answer="hello", usage=TokenUsage(prompt_tokens=3, completion_tokens=1))


class Scripted:
    """An adapter that raises the scripted errors in turn, then answers; hangs on `hang`."""

    def __init__(self, *outcomes: ModelError | str, name: str = "scripted") -> None:
        self.name = name
        self.outcomes = list(outcomes)
        self.calls = 0
        self.asked: list[str] = []

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        self.calls += 1
        self.asked.append(request.model)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome == "hang":
            await asyncio.Event().wait()
        if isinstance(outcome, ModelError):
            raise outcome
        if on_text is not None:
            await on_text("hel")
            await on_text("lo")
        return ANSWER

    async def aclose(self) -> None:
        pass


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def caller(
    *models: Scripted, attempts: int = 4, timeout_s: float = 1.0, rate_limited_attempts: int = 20
) -> tuple[Caller, Sleeps]:
    by_name: dict[str, ModelAdapter] = {m.name: m for m in models}

    def model(name: str) -> ModelAdapter:
        if name not in by_name:
            raise ValueError(f"unknown model {name!r}")
        return by_name[name]

    sleep = Sleeps()
    chosen = ModelSettings(
        max_attempts=attempts, timeout_s=timeout_s, rate_limited_attempts=rate_limited_attempts
    )
    return Caller(chosen, model, sleep=sleep), sleep


def busy(retry_after: float | None = None, status: int | None = 503) -> ModelError:
    return ModelError(f"HTTP {status}", retryable=True, retry_after=retry_after, status=status)


async def decide(c: Caller, chain: tuple[str, ...] = ("scripted",)) -> Decided:
    return await c.decide(REQUEST, chain)


async def test_a_first_answer_takes_one_call_and_no_wait() -> None:
    model = Scripted()
    c, sleep = caller(model)
    assert await decide(c) == Decided(ANSWER, "scripted", 1)
    assert sleep.waits == []


async def test_retryable_errors_are_retried_with_growing_jittered_waits() -> None:
    model = Scripted(busy(), busy(), busy())
    c, sleep = caller(model)
    decided = await decide(c)
    assert (decided.reply, decided.attempts, model.calls) == (ANSWER, 4, 4)
    assert len(sleep.waits) == 3
    assert all(0 <= wait <= 0.5 * 2**i for i, wait in enumerate(sleep.waits))


async def test_the_servers_retry_after_is_honoured_up_to_thirty_seconds() -> None:
    model = Scripted(busy(retry_after=2.5), busy(retry_after=600))
    c, sleep = caller(model, attempts=3)
    assert (await decide(c)).attempts == 3
    assert sleep.waits == [2.5, 30.0]


async def test_rate_limited_answers_wait_without_spending_the_attempts() -> None:
    # Two attempts allowed, five 429s and a 529: the call is refused for load, not failing.
    refusals = [busy(retry_after=0.1, status=429) for _ in range(5)] + [busy(status=529)]
    model = Scripted(*refusals)
    c, sleep = caller(model, attempts=2)
    decided = await decide(c)
    assert (decided.reply, decided.attempts, model.calls) == (ANSWER, 7, 7)
    assert sleep.waits[:5] == [0.1] * 5


async def test_rate_limited_answers_fail_the_call_past_their_own_limit() -> None:
    model = Scripted(*[busy(status=429) for _ in range(4)])
    c, _ = caller(model, attempts=1, rate_limited_attempts=2)
    with pytest.raises(ModelError, match="HTTP 429"):
        await decide(c)
    assert model.calls == 3


async def test_a_non_retryable_error_is_raised_at_once() -> None:
    model = Scripted(ModelError("HTTP 401", retryable=False, status=401))
    c, sleep = caller(model)
    with pytest.raises(ModelError, match="HTTP 401") as raised:
        await decide(c)
    assert not raised.value.retryable
    assert (model.calls, sleep.waits) == (1, [])


async def test_the_last_error_is_raised_when_the_attempts_run_out() -> None:
    model = Scripted(*(ModelError(f"HTTP 50{i}", retryable=True) for i in range(3)))
    c, sleep = caller(model, attempts=3)
    with pytest.raises(ModelError, match="HTTP 502") as raised:
        await decide(c)
    assert raised.value.retryable
    assert (model.calls, len(sleep.waits)) == (3, 2)


async def test_a_call_over_its_timeout_is_a_retryable_error_and_is_retried() -> None:
    model = Scripted("hang", "hang")
    c, sleep = caller(model, attempts=3, timeout_s=0.02)
    decided = await decide(c)
    assert (decided.reply, decided.attempts, len(sleep.waits)) == (ANSWER, 3, 2)


async def test_timeouts_until_the_end_raise_a_timed_out_error() -> None:
    model = Scripted("hang", "hang")
    c, _ = caller(model, attempts=2, timeout_s=0.02)
    with pytest.raises(ModelError, match=r"timed out after 0\.02s") as raised:
        await decide(c)
    assert raised.value.retryable
    assert model.calls == 2


async def test_an_unavailable_model_hands_the_step_to_the_next_one() -> None:
    primary = Scripted(busy(), busy(), name="primary")
    fallback = Scripted(name="fallback")
    c, _ = caller(primary, fallback, attempts=2)
    decided = await decide(c, ("primary", "fallback"))
    assert decided == Decided(ANSWER, "fallback", 3, fallback_from="primary")
    assert (primary.calls, fallback.calls, fallback.asked) == (2, 1, ["fallback"])


async def test_a_refused_request_does_not_fall_back() -> None:
    # A 400 would fail the same way elsewhere: the step fails, no other model is paid for.
    primary = Scripted(ModelError("HTTP 400", retryable=False, status=400), name="primary")
    fallback = Scripted(name="fallback")
    c, _ = caller(primary, fallback)
    with pytest.raises(ModelError, match="HTTP 400"):
        await decide(c, ("primary", "fallback"))
    assert fallback.calls == 0


async def test_the_last_models_error_is_raised_when_every_model_is_down() -> None:
    primary = Scripted(busy(), name="primary")
    fallback = Scripted(ModelError("HTTP 500", retryable=True), name="fallback")
    c, _ = caller(primary, fallback, attempts=1)
    with pytest.raises(ModelError, match="HTTP 500"):
        await decide(c, ("primary", "fallback"))


async def test_an_unknown_model_is_a_non_retryable_model_error() -> None:
    c, _ = caller(Scripted())
    with pytest.raises(ModelError, match="unknown model 'nope'") as raised:
        await decide(c, ("nope",))
    assert not raised.value.retryable


async def test_each_call_gets_its_own_text_sink_tagged_with_its_attempt() -> None:
    model = Scripted(busy())
    c, _ = caller(model)
    written: list[tuple[str, int, str]] = []

    def text_for(name: str, attempt: int) -> TextSink:
        async def sink(piece: str) -> None:
            written.append((name, attempt, piece))

        return sink

    await c.decide(REQUEST, ("scripted",), text_for=text_for)
    assert written == [("scripted", 2, "hel"), ("scripted", 2, "lo")]


def test_a_model_error_shows_its_retry_policy() -> None:
    error = ModelError("HTTP 429", retryable=True, retry_after=1.5, status=429)
    assert str(error) == "HTTP 429"
    assert (error.retryable, error.retry_after, error.rate_limited) == (True, 1.5, True)
    assert "retryable=True" in repr(error)
    assert ModelError("bad", retryable=False).retry_after is None
    assert not ModelError("down", retryable=True, status=503).rate_limited
