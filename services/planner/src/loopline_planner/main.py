"""The planner service's one wiring point."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from loopline_artifacts import open_artifacts
from loopline_bus import KafkaBus, SubscriptionOptions, read_history
from loopline_events import CONTEXTS, ContextAssembled
from loopline_runtime import Stop, load_endpoints, register_settings

from loopline_planner.adapters.artifacts import ArtifactTexts
from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler

GROUP = "planner"


async def start() -> Stop:
    """Subscribe to contexts; return the function that stops it all."""
    endpoints = load_endpoints()
    namespace = endpoints.kafka.topic_prefix
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    cache = ResponseCache(
        aioredis.from_url(endpoints.redis.url.get_secret_value()), namespace=namespace
    )
    pool = await asyncpg.create_pool(endpoints.postgres.dsn.get_secret_value(), min_size=1)
    # The planner reads artifacts, never writes them: their writers migrate the schema.
    artifacts = ArtifactTexts(await open_artifacts(pool, namespace, migrated=False))

    async def from_log(run_id: str) -> list[ContextAssembled]:
        recorded = await read_history(endpoints.kafka, [CONTEXTS.name], run_id)
        return [r.event.payload for r in recorded if isinstance(r.event.payload, ContextAssembled)]

    settings = ModelSettings()
    register_settings(settings)  # a key echoed in an error never reaches a log or an event
    handler = PlannerHandler(
        settings,
        build_model,
        cache,
        conversations=Conversations(redis, namespace, from_log),
        artifacts=artifacts,
        write_behind=True,
    )
    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
    await bus.ensure_topics()
    await bus.start()
    options = SubscriptionOptions(before_publish=handler.flush, on_reassigned=handler.forget)
    await bus.subscribe(GROUP, [CONTEXTS.name], handler, options).start()

    async def stop() -> None:
        await bus.stop()
        await handler.aclose()
        await redis.aclose()
        await pool.close()

    return stop
