"""The memory service's one wiring point."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from loopline_bus import KafkaBus
from loopline_events import CONTROL, DECISIONS, GOALS, OBSERVATIONS
from loopline_runtime import Stop, load_endpoints, load_profiles, migrate, schema_name
from loopline_tools import ToolRegistry

from loopline_memory.adapters.migrations import MIGRATIONS
from loopline_memory.adapters.store import RunStore
from loopline_memory.domain import Environment
from loopline_memory.handlers import MemoryHandler

GROUP = "memory"


async def start() -> Stop:
    """Connect, migrate, subscribe; return the function that stops it all."""
    endpoints = load_endpoints()
    namespace = endpoints.kafka.topic_prefix
    schema = schema_name("memory", namespace)
    pool = await asyncpg.create_pool(
        endpoints.postgres.dsn.get_secret_value(), min_size=1, max_size=8
    )
    async with pool.acquire() as conn:
        await migrate(conn, schema, MIGRATIONS)
    redis = aioredis.from_url(endpoints.redis.url)
    tools = ToolRegistry.default()
    env = Environment(profiles=load_profiles(), tools={s.name: s for s in tools.specs()})
    handler = MemoryHandler(RunStore(pool, redis, schema, namespace), env)

    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
    await bus.ensure_topics()
    await bus.start()
    topics = [GOALS.name, CONTROL.name, DECISIONS.name, OBSERVATIONS.name]
    await bus.subscribe(GROUP, topics, handler).start()

    async def stop() -> None:
        await bus.stop()
        await redis.aclose()
        await pool.close()

    return stop
