"""The planner's use case without Kafka or Redis: a fake limiter that says how long to wait, a
scripted model, and a list for what the planner publishes by itself (streamed text, waits,
decisions made in the background)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from loopline_bus import Outbound
from loopline_events import (
    CONTEXTS,
    CONTROL,
    DECISIONS,
    STREAM,
    ContextAssembled,
    DelayReason,
    Envelope,
    FailRun,
    FailureReason,
    Message,
    ModelCallDelayed,
    ModelDecided,
    ModelFailed,
    ModelTextDelta,
    TokenUsage,
)
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.limiter import Ask, Gate, Verdict
from loopline_planner.adapters.models import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
    ModelSettings,
    TextSink,
)
from loopline_planner.handlers import PlannerHandler
from loopline_runtime import parse_profiles

PROFILES = parse_profiles(
    """
[agents.pausing]
system_prompt = "s"
model = "openai:m"
[agents.failing]
system_prompt = "s"
model = "openai:m"
on_quota = "fail"
[agents.fallback]
system_prompt = "s"
model = "openai:m"
fallback_models = ["anthropic:c"]
"""
)


class Limiter:
    """Answers from a script of verdicts, then lets everything go."""

    def __init__(self, *verdicts: Verdict) -> None:
        self.verdicts = list(verdicts)
        self.settled: list[tuple[Ask, TokenUsage]] = []

    def applies(self, model: str, tenant: str) -> bool:
        return True

    async def ask(self, ask: Ask) -> Verdict:
        return self.verdicts.pop(0) if self.verdicts else Verdict(go=True)

    async def settle(self, ask: Ask, usage: TokenUsage, cost_usd: float) -> None:
        self.settled.append((ask, usage))

    async def hold(self, model: str, seconds: float) -> None:
        pass


class Model:
    """Writes `text` in two pieces and answers with it; raises the scripted errors first."""

    def __init__(self, name: str, text: str = "It is 42.", *errors: ModelError) -> None:
        self.name, self.text, self.errors = name, text, list(errors)
        self.calls = 0

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        self.calls += 1
        half = len(self.text) // 2
        if on_text is not None:
            await on_text(self.text[:half])
        if self.errors:
            raise self.errors.pop(0)
        if on_text is not None:
            await on_text(self.text[half:])
        return ModelReply(final_answer=self.text, usage=TokenUsage(prompt_tokens=9))

    async def aclose(self) -> None:
        pass


class Published:
    """What the planner publishes itself, in order."""

    def __init__(self) -> None:
        self.items: list[Outbound] = []
        self.arrived = asyncio.Event()

    async def __call__(self, outbound: Sequence[Outbound]) -> None:
        self.items += outbound
        self.arrived.set()

    def of(self, kind: type[Any]) -> list[Any]:
        return [o.event.payload for o in self.items if isinstance(o.event.payload, kind)]


def planner(limiter: Limiter, *models: Model, **settings: Any) -> tuple[PlannerHandler, Published]:
    by_name: dict[str, ModelAdapter] = {m.name: m for m in models}
    published = Published()
    handler = PlannerHandler(
        ModelSettings(max_attempts=3, stream_flush_s=0, inline_wait_s=0.5, **settings),
        lambda name, _: by_name[name],
        gate=Gate(limiter),
        profiles=PROFILES,
        publish=published,
        conversations=Conversations(None, "unit.", _nothing_logged),
    )
    return handler, published


async def _nothing_logged(run_id: str) -> list[ContextAssembled]:
    return []  # every context here carries its whole history (base 0)


def context(agent: str = "pausing", seq: int = 1) -> Envelope[ContextAssembled]:
    payload = ContextAssembled(
        agent=agent, model="openai:m", appended=(Message(role="user", content="6 * 7?"),)
    )
    return Envelope.of(payload, run_id="run-1", producer="memory", seq=seq, tenant="acme")


def wait(seconds: float, reason: DelayReason = DelayReason.RATE_LIMIT) -> Verdict:
    return Verdict(go=False, wait_s=seconds, reason=reason, expected_s=seconds)


async def test_a_short_wait_is_waited_within_the_batch() -> None:
    handler, published = planner(Limiter(wait(0.05), wait(0.05)), Model("openai:m"))
    (out,) = await handler(context())
    assert out.topic == DECISIONS.name
    assert isinstance(out.event.payload, ModelDecided)
    assert published.of(ModelCallDelayed) == []


async def test_a_long_wait_leaves_the_batch_announced_and_decides_in_the_background() -> None:
    handler, published = planner(Limiter(wait(0.8)), Model("openai:m"))
    started = asyncio.get_running_loop().time()
    assert await handler(context()) == ()  # the batch goes on without it
    assert asyncio.get_running_loop().time() - started < 0.5
    (delayed,) = published.of(ModelCallDelayed)
    assert (delayed.model, delayed.reason) == ("openai:m", DelayReason.RATE_LIMIT)
    assert handler.waiting is not None
    assert handler.waiting.holds(context())
    assert await handler(context()) == ()  # a repeat meanwhile: decided once, in the background
    while not published.of(ModelDecided):
        published.arrived.clear()
        await asyncio.wait_for(published.arrived.wait(), 5)
    topics = [o.topic for o in published.items]
    assert (topics[0], topics[-1]) == (DECISIONS.name, DECISIONS.name)
    assert STREAM.name in topics  # its text streamed before its decision
    assert not handler.waiting.holds(context())
    await handler.aclose()


async def test_text_streams_before_the_decision_and_a_retry_does_not_repeat_it() -> None:
    flaky = Model("openai:m", "It is forty-two.", ModelError("HTTP 503", retryable=True))
    handler, published = planner(Limiter(), flaky)
    (out,) = await handler(context())
    deltas = [o.event for o in published.items if o.topic == STREAM.name]
    assert flaky.calls == 2
    assert [(d.payload.attempt, d.payload.offset, d.payload.text) for d in deltas] == [
        (1, 0, "It is fo"),  # the first call's half, then it failed
        (2, 8, "rty-two."),  # the retry: only what was not shown yet
    ]
    assert all(d.seq == 1 and d.run_id == "run-1" for d in deltas)
    assert isinstance(out.event.payload, ModelDecided)
    assert out.event.payload.final_answer == "It is forty-two."


async def test_a_tenant_over_quota_is_failed_when_its_profile_says_so() -> None:
    model = Model("openai:m")
    handler, _ = planner(Limiter(wait(3600, DelayReason.QUOTA)), model)
    (out,) = await handler(context("failing"))
    assert out.topic == CONTROL.name
    command = out.event.payload
    assert isinstance(command, FailRun)
    assert (command.reason, command.at_step, command.requested_by) == (
        FailureReason.QUOTA_EXCEEDED,
        1,
        "planner",
    )
    assert model.calls == 0


async def test_a_tenant_over_quota_is_paused_when_its_profile_says_so() -> None:
    handler, published = planner(Limiter(wait(3600, DelayReason.QUOTA)), Model("openai:m"))
    assert await handler(context("pausing")) == ()
    (delayed,) = published.of(ModelCallDelayed)
    assert delayed.reason is DelayReason.QUOTA
    await handler.aclose()  # stops the wait


async def test_an_unavailable_model_goes_to_the_fallback_and_the_decision_says_so() -> None:
    down = Model("openai:m", "x", *(ModelError("HTTP 503", retryable=True) for _ in range(3)))
    handler, _ = planner(Limiter(), down, Model("anthropic:c", "From Claude."))
    (out,) = await handler(context("fallback"))
    decided = out.event.payload
    assert isinstance(decided, ModelDecided)
    assert (decided.model, decided.fallback_from, decided.final_answer) == (
        "anthropic:c",
        "openai:m",
        "From Claude.",
    )


async def test_a_failing_model_without_fallback_is_a_model_failure() -> None:
    down = Model("openai:m", "x", ModelError("HTTP 400: bad", retryable=False))
    handler, _ = planner(Limiter(), down)
    (out,) = await handler(context("pausing"))
    assert isinstance(out.event.payload, ModelFailed)
    assert not out.event.payload.retryable


async def test_stopping_hands_waiting_steps_back_to_their_topic() -> None:
    handler, published = planner(Limiter(wait(3600)), Model("openai:m"))
    waiting = context()
    assert await handler(waiting) == ()
    await handler.hand_back()
    back = [o for o in published.items if o.topic == CONTEXTS.name]
    assert [o.event.event_id for o in back] == [waiting.event_id]  # the same event, unchanged
    assert handler.waiting is not None
    assert handler.waiting.count == 0


@pytest.mark.parametrize("seconds", [0.0, 0.4])
async def test_without_a_bus_every_wait_is_waited_within_the_batch(seconds: float) -> None:
    handler = PlannerHandler(
        ModelSettings(inline_wait_s=0.1),
        lambda name, _: Model(name),
        gate=Gate(Limiter(wait(seconds) if seconds else Verdict(go=True))),
        profiles=PROFILES,
        conversations=Conversations(None, "unit.", _nothing_logged),
    )
    (out,) = await handler(context())
    assert isinstance(out.event.payload, ModelDecided)


def test_deltas_are_not_decisions() -> None:
    assert ModelTextDelta.TYPE not in DECISIONS.events
