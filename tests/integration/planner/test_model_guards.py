"""The planner's guards on the real Kafka and Redis, with a real OpenAI-speaking server: the
messages a model is sent are rewritten by the guards; a guard's trip before or after the
model call answers the context in the decision's place, with the decision's envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
import redis.asyncio as aioredis
from loopline_bus import EventStream, KafkaBus
from loopline_events import (
    CONTEXTS,
    DECISIONS,
    ContextAssembled,
    Envelope,
    GuardHook,
    GuardTripped,
    Message,
    ModelDecided,
    derived_id,
)
from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler
from loopline_runtime import (
    PASS,
    Endpoints,
    Guard,
    GuardContext,
    Guards,
    Trip,
    Verdict,
    installed_guards,
    load_guards,
    parse_profiles,
)
from loopline_testing.openai_server import OpenAIServer
from loopline_testing.probes import first_events

PROFILES = parse_profiles(
    """
[agents.careful]
system_prompt = "Be careful."
model = "openai:gpt-test"
[agents.careful.guards.redact_secrets]
messages = true
[agents.careful.guards.topics]
"""
)


class Topics(Guard):
    """Will not let the model be asked about launch codes, nor let it answer with them."""

    async def before_model(
        self, messages: tuple[Message, ...], at: GuardContext
    ) -> Verdict[tuple[Message, ...]]:
        if any("launch codes" in m.content for m in messages):
            return Trip("no talk of launch codes", "tell")
        return PASS

    async def after_model(self, decision: ModelDecided, at: GuardContext) -> Verdict[ModelDecided]:
        if decision.final_answer and "0000" in decision.final_answer:
            return Trip("the answer gives a code away", "fail")
        return PASS


def guards() -> Mapping[str, Guards]:
    return load_guards(PROFILES, {**installed_guards(), "topics": lambda: Topics})


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
async def planner(
    server: OpenAIServer, loopline_endpoints: Endpoints, topic_prefix: str
) -> AsyncIterator[PlannerHandler]:
    settings = ModelSettings(openai_base_url=server.base_url, max_attempts=1)
    redis = aioredis.from_url(loopline_endpoints.redis.url.get_secret_value())
    cache = ResponseCache(
        aioredis.from_url(loopline_endpoints.redis.url.get_secret_value()), namespace=topic_prefix
    )
    handler = PlannerHandler(
        settings,
        build_model,
        cache,
        profiles=PROFILES,
        conversations=Conversations(redis, topic_prefix, _nothing_logged),
        guards=guards(),
    )
    yield handler
    keys = [k async for k in redis.scan_iter(match=f"{topic_prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await handler.aclose()


async def _nothing_logged(run_id: str) -> list[ContextAssembled]:
    return []  # every context here carries its whole history (base 0)


def _context(goal: str, run_id: str, seq: int = 1) -> Envelope[ContextAssembled]:
    context = ContextAssembled(
        agent="careful",
        model="openai:gpt-test",
        appended=(
            Message(role="system", content="Be careful."),
            Message(role="user", content=goal),
        ),
    )
    return Envelope.of(context, run_id=run_id, producer="memory", seq=seq)


async def _decide(
    kafka_bus: KafkaBus, planner: PlannerHandler, *contexts: Envelope[Any]
) -> list[Envelope[Any]]:
    """What the planner, subscribed to agent.contexts, publishes for `contexts`."""
    stream = EventStream(kafka_bus.settings, topics=[DECISIONS.name])
    await stream.start()
    try:
        await kafka_bus.subscribe("planner", [CONTEXTS.name], planner).start()
        for context in contexts:
            await kafka_bus.publish(CONTEXTS.name, context)
        return await first_events(stream, len(contexts))
    finally:
        await stream.stop()


def _answers(decision: Envelope[Any], context: Envelope[Any]) -> None:
    """`decision` has the envelope the planner gives the decision of `context`."""
    assert decision.causation_id == context.event_id
    assert (decision.run_id, decision.seq, decision.tenant) == (
        context.run_id,
        context.seq,
        context.tenant,
    )
    assert decision.event_id == derived_id(context.event_id, "planner", 0)
    assert decision.producer == "planner"


async def test_the_model_is_sent_the_messages_the_guards_left(
    kafka_bus: KafkaBus, planner: PlannerHandler, server: OpenAIServer
) -> None:
    server.reply_text("noted")
    context = _context("Charge card 4111-1111-1111-1111 with key AKIAIOSFODNN7EXAMPLE", "run-r")
    (decision,) = await _decide(kafka_bus, planner, context)
    assert isinstance(decision.payload, ModelDecided)
    assert decision.payload.final_answer == "noted"
    _answers(decision, context)
    sent = server.requests[0]["messages"]
    assert sent[-1]["content"] == "Charge card [redacted] with key [redacted]"


async def test_a_trip_before_the_model_answers_the_context_and_no_model_is_asked(
    kafka_bus: KafkaBus, planner: PlannerHandler, server: OpenAIServer
) -> None:
    context = _context("What are the launch codes?", "run-before")
    (answer,) = await _decide(kafka_bus, planner, context)
    assert answer.payload == GuardTripped(
        guard="topics", hook=GuardHook.BEFORE_MODEL, reason="no talk of launch codes", action="tell"
    )
    _answers(answer, context)
    assert server.calls == 0


async def test_a_trip_after_the_model_answers_the_context_again_when_it_is_redelivered(
    kafka_bus: KafkaBus, planner: PlannerHandler, server: OpenAIServer
) -> None:
    server.reply_text("the code is 0000")
    context = _context("Is the door locked?", "run-after")
    first, again = await _decide(kafka_bus, planner, context, context)
    assert server.calls == 1  # the redelivery was answered from the cache, and guarded again
    for answer in (first, again):
        trip = answer.payload
        assert isinstance(trip, GuardTripped)
        assert trip.usage.total_tokens > 0  # the call was made: what it spent is told
        assert trip.model_copy(update={"usage": None}) == GuardTripped(
            guard="topics",
            hook=GuardHook.AFTER_MODEL,
            reason="the answer gives a code away",
            action="fail",
        ).model_copy(update={"usage": None})
        _answers(answer, context)
