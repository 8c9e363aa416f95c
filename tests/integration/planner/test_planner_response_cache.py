"""The planner's response cache on the real Redis and Kafka: a redelivered context is decided
again from the cache, without a second model call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from loopline_bus import EventStream, KafkaBus, Outbound, SubscriptionOptions
from loopline_events import (
    CONTEXTS,
    DECISIONS,
    ContextAssembled,
    Envelope,
    Message,
    ModelDecided,
)
from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler
from loopline_runtime import Endpoints
from loopline_testing.openai_server import OpenAIServer

CONTEXT = ContextAssembled(
    agent="openai",
    model="openai:gpt-test",
    appended=(Message(role="user", content="Compute 2 + 3"),),
)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
async def planner(
    server: OpenAIServer, loopline_endpoints: Endpoints, topic_prefix: str
) -> AsyncIterator[PlannerHandler]:
    # One attempt per decision: a second, uncached call would meet an empty script and fail.
    settings = ModelSettings(openai_base_url=server.base_url, max_attempts=1)
    redis = aioredis.from_url(loopline_endpoints.redis.url.get_secret_value())
    cache = ResponseCache(
        aioredis.from_url(loopline_endpoints.redis.url.get_secret_value()), namespace=topic_prefix
    )
    conversations = Conversations(redis, topic_prefix, _nothing_logged)
    handler = PlannerHandler(settings, build_model, cache, conversations=conversations)
    yield handler
    await redis.aclose()
    keys = [k async for k in cache.redis.scan_iter(match=f"{topic_prefix}*")]
    if keys:
        await cache.redis.delete(*keys)
    await handler.aclose()


async def _nothing_logged(run_id: str) -> list[ContextAssembled]:
    return []  # every context here carries its whole history (base 0)


def _context(seq: int) -> Envelope[ContextAssembled]:
    return Envelope.of(CONTEXT, run_id="run-cache", producer="memory", seq=seq)


async def test_a_context_delivered_twice_over_kafka_calls_the_model_once(
    kafka_bus: KafkaBus, planner: PlannerHandler, server: OpenAIServer
) -> None:
    server.reply_tool_calls([("calculator", {"expression": "2 + 3"}, "call_a")])
    stream = EventStream(kafka_bus.settings, topics=[DECISIONS.name])
    await stream.start()
    subscription = kafka_bus.subscribe("planner", [CONTEXTS.name], planner)
    await subscription.start()
    context = _context(seq=1)
    await kafka_bus.publish(CONTEXTS.name, context)
    await kafka_bus.publish(CONTEXTS.name, context)  # the redelivery: the same event id
    decisions = await _first(stream, 2)
    await stream.stop()
    assert server.calls == 1
    assert decisions[0].event_id == decisions[1].event_id
    payloads = [d.payload for d in decisions]
    assert all(isinstance(p, ModelDecided) for p in payloads)
    # The same call, with the same id each time: one no one could guess (not the model's own).
    calls = [[(c.call_id, c.tool, c.arguments) for c in p.tool_calls] for p in payloads]
    assert calls[0] == calls[1]
    ((call_id, tool, arguments),) = calls[0]
    assert (tool, arguments) == ("calculator", {"expression": "2 + 3"})
    assert call_id.startswith("call_")
    assert call_id != "call_a"
    assert len(call_id) == len("call_") + 32


async def test_each_step_of_a_run_is_cached_on_its_own(
    planner: PlannerHandler, server: OpenAIServer
) -> None:
    server.reply_text("five")
    server.reply_text("still five")
    first = await planner(_context(seq=1))
    second = await planner(_context(seq=2))
    again = await planner(_context(seq=1))
    assert server.calls == 2
    answers = [out[0].event.payload.final_answer for out in (first, second, again)]
    assert answers == ["five", "still five", "five"]


async def test_an_unreachable_redis_degrades_to_calling_the_model(server: OpenAIServer) -> None:
    # Port 1 refuses connections: the cache fails, the decision still comes.
    nowhere = aioredis.from_url("redis://127.0.0.1:1/0")
    cache = ResponseCache(aioredis.from_url("redis://127.0.0.1:1/0"), namespace="nowhere.")
    handler = PlannerHandler(
        ModelSettings(openai_base_url=server.base_url, max_attempts=1),
        build_model,
        cache,
        conversations=Conversations(nowhere, "nowhere.", _nothing_logged),
    )
    server.reply_text("five")
    try:
        out = await handler(_context(seq=1))
    finally:
        await handler.aclose()
        await nowhere.aclose()
    assert server.calls == 1
    assert out[0].event.payload.final_answer == "five"


async def _first(stream: EventStream, count: int) -> list[Envelope[Any]]:
    async def collect() -> list[Envelope[Any]]:
        seen: list[Envelope[Any]] = []
        async for event in stream.events():
            seen.append(event)
            if len(seen) == count:
                return seen
        return seen

    return await asyncio.wait_for(collect(), 60)


async def test_with_write_behind_a_batch_records_its_replies_before_they_are_published(
    kafka_bus: KafkaBus, planner: PlannerHandler, server: OpenAIServer
) -> None:
    planner.write_behind = True
    assert planner.cache is not None
    server.reply_tool_calls([("calculator", {"expression": "2 + 3"}, "call_b")])
    stream = EventStream(kafka_bus.settings, topics=[DECISIONS.name])
    await stream.start()
    options = SubscriptionOptions(before_publish=planner.flush)
    await kafka_bus.subscribe("planner", [CONTEXTS.name], planner, options).start()
    context = _context(seq=3)
    # Twice in one publish: most likely one batch, where the second is answered from the
    # reply staged by the first; else the next batch, from Redis.
    await kafka_bus.publish_many([Outbound(CONTEXTS.name, context)] * 2)
    decisions = await _first(stream, 2)
    await stream.stop()
    assert server.calls == 1
    assert decisions[0].event_id == decisions[1].event_id
    assert await planner.cache.redis.exists(planner.cache.key("run-cache", 3)) == 1
