"""Memory's write-behind on the real Kafka, Redis and PostgreSQL: a batch is saved in one
transaction before its outputs are published, and a batch whose save fails is handled again
from what is durable, losing and doubling nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from loopline_bus import EventStream, KafkaBus, Outbound, SubscriptionOptions
from loopline_events import CONTEXTS, GOALS, ContextAssembled, Envelope, GoalSubmitted
from loopline_memory.adapters.environment import load_environment
from loopline_memory.adapters.migrations import MIGRATIONS
from loopline_memory.adapters.store import HotStoreUnavailableError, Pending, RunStore, StoredRun
from loopline_memory.domain import RunState
from loopline_memory.domain.replay import MEMORY_INPUTS
from loopline_memory.handlers import MemoryHandler
from loopline_runtime import Endpoints, open_schema
from loopline_testing.chaos import free_ports
from loopline_testing.probes import first_events

RUNS = 8


class _Logged(logging.Handler):
    """Sets `seen` once a record with `text` is logged."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
async def store(
    loopline_endpoints: Endpoints, kafka_bus: KafkaBus, topic_prefix: str
) -> AsyncIterator[RunStore]:
    endpoints = loopline_endpoints.model_copy(update={"kafka": kafka_bus.settings})
    pool, schema = await open_schema(endpoints, "memory", MIGRATIONS)
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    yield RunStore(pool, redis, schema, topic_prefix)
    keys = [k async for k in redis.scan_iter(match=f"{topic_prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await pool.close()


async def test_a_batch_whose_save_fails_is_handled_again_and_loses_nothing(
    kafka_bus: KafkaBus, store: RunStore
) -> None:
    handler = MemoryHandler(store, load_environment(), write_behind=True)
    options = SubscriptionOptions(before_publish=handler.flush, on_reassigned=handler.forget)
    # The timeline table is away: every save fails until it is back.
    await store.pool.execute(f'ALTER TABLE "{store.schema}".events RENAME TO events_away')
    stream = EventStream(kafka_bus.settings, topics=[CONTEXTS.name])
    await stream.start()
    await kafka_bus.subscribe("memory", list(MEMORY_INPUTS), handler, options).start()
    goals = [
        Envelope.of(GoalSubmitted(goal=f"What is {i} + 1?"), run_id=f"run-{i}", producer="test")
        for i in range(RUNS)
    ]
    failed = _Logged("batch of memory failed")
    logging.getLogger("loopline.bus").addHandler(failed)
    try:
        await kafka_bus.publish_many([Outbound(GOALS.name, g) for g in goals])
        await asyncio.wait_for(failed.seen.wait(), 60)
    finally:
        logging.getLogger("loopline.bus").removeHandler(failed)
    # Nothing of a failed batch is published, and nothing of it is saved.
    assert await store.pool.fetchval(f'SELECT count(*) FROM "{store.schema}".runs') == 0
    await store.pool.execute(f'ALTER TABLE "{store.schema}".events_away RENAME TO events')

    contexts = await first_events(stream, RUNS)
    await asyncio.sleep(1.0)  # room for a context published twice to show up
    late = await _drain(stream)
    await stream.stop()

    assert not late, "a context was published twice"
    assert sorted(c.run_id for c in contexts) == sorted(g.run_id for g in goals)
    assert all(isinstance(c.payload, ContextAssembled) for c in contexts)
    for goal in goals:
        hot = await store.redis.get(store._key(goal.run_id))
        assert hot is not None
        row = await store.pool.fetchrow(
            f'SELECT state FROM "{store.schema}".runs WHERE run_id = $1', goal.run_id
        )
        assert row is not None
        in_redis = StoredRun.model_validate_json(hot).state
        in_postgres = RunState.model_validate_json(row["state"])
        assert in_redis.model_dump_json() == in_postgres.model_dump_json()
        assert str(goal.event_id) in in_redis.applied


async def test_a_run_with_several_events_in_one_batch_is_saved_once_with_all_of_them(
    kafka_bus: KafkaBus, store: RunStore
) -> None:
    handler = MemoryHandler(store, load_environment(), write_behind=True)
    goal = Envelope.of(GoalSubmitted(goal="What is 2 + 2?"), run_id="run-a", producer="test")
    first = await handler(goal)
    assert len(first) == 1
    # Not saved yet: the state lives in the process until the batch is flushed.
    assert await store.load("run-a") is None
    again = await handler(goal)  # the same event again, before any flush: re-emitted as is
    assert [o.event.event_id for o in again] == [o.event.event_id for o in first]
    await handler.flush()
    saved = await store.load("run-a")
    assert saved is not None
    assert str(goal.event_id) in saved.state.applied
    timeline = await store.pool.fetchval(
        f'SELECT count(*) FROM "{store.schema}".events WHERE run_id = $1', "run-a"
    )
    assert timeline == 2  # the goal and the context it caused


async def _drain(stream: EventStream) -> list[Envelope[Any]]:
    seen: list[Envelope[Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.5):
            async for event in stream.events():
                # Appended one by one: the timeout ends the loop, keeping what came.
                seen.append(event)  # noqa: PERF401
    return seen


async def test_redis_unreachable_is_a_miss_to_a_load_and_a_retryable_error_to_a_save(
    store: RunStore, topic_prefix: str
) -> None:
    handler = MemoryHandler(store, load_environment(), write_behind=True)
    goal = Envelope.of(GoalSubmitted(goal="What is 2 + 2?"), run_id="run-r", producer="test")
    await handler(goal)
    await handler.flush()
    saved = await store.load("run-r")
    assert saved is not None
    # The same stores, Redis on a port where nothing listens (stopped, restarting, failed over).
    (closed,) = free_ports(1)
    gone = aioredis.from_url(f"redis://127.0.0.1:{closed}/0")
    cut_off = RunStore(store.pool, gone, store.schema, topic_prefix)
    try:
        loaded = await cut_off.load("run-r")  # PostgreSQL, written first, is never behind
        assert loaded is not None
        assert loaded.model_dump_json() == saved.model_dump_json()
        with pytest.raises(HotStoreUnavailableError) as refused:
            await cut_off.save_many([Pending(saved, goal, [])])
        assert refused.value.retryable  # the bus retries the event, then recovery does
    finally:
        await gone.aclose()
