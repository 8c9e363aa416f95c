"""The planner service's one wiring point."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from loopline_artifacts import open_artifacts
from loopline_bus import KafkaBus, SubscriptionOptions, read_history
from loopline_events import CONTEXTS, ContextAssembled
from loopline_runtime import (
    Stop,
    load_endpoints,
    load_guards,
    load_limits,
    load_profiles,
    load_signing,
    register_settings,
)

from loopline_planner.adapters.artifacts import ArtifactTexts
from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.limiter import Gate, RedisLimiter
from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler

GROUP = "planner"


async def start() -> Stop:
    """Subscribe to contexts; return the function that stops it all."""
    endpoints = load_endpoints()
    profiles = load_profiles()
    guards = load_guards(profiles)  # a guard named wrongly stops the start, before any step
    namespace = endpoints.kafka.topic_prefix
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    cache = ResponseCache(redis, namespace=namespace)
    gate = Gate(RedisLimiter(redis, load_limits(), namespace=namespace))
    pool = await asyncpg.create_pool(endpoints.postgres.dsn.get_secret_value(), min_size=1)
    # The planner reads artifacts, never writes them: their writers migrate the schema.
    artifacts = ArtifactTexts(await open_artifacts(pool, namespace, migrated=False))
    bus = KafkaBus(
        settings=endpoints.kafka, client_id=GROUP, signing_key=load_signing().signing_key()
    )
    settings = ModelSettings()
    register_settings(settings)  # a key echoed in an error never reaches a log or an event

    async def from_log(run_id: str) -> list[ContextAssembled]:
        recorded = await read_history(endpoints.kafka, [CONTEXTS.name], run_id)
        return [r.event.payload for r in recorded if isinstance(r.event.payload, ContextAssembled)]

    handler = PlannerHandler(
        settings,
        build_model,
        cache,
        write_behind=True,
        gate=gate,
        profiles=profiles,
        publish=bus.publish_many,
        conversations=Conversations(redis, namespace, from_log),
        artifacts=artifacts,
        guards=guards,
    )
    await bus.ensure_topics()
    await bus.start()
    options = SubscriptionOptions(before_publish=handler.flush, on_reassigned=handler.forget)
    subscription = bus.subscribe(GROUP, [CONTEXTS.name], handler, options)
    await subscription.start()

    async def stop() -> None:
        await subscription.stop()
        await handler.hand_back()
        await bus.stop()
        await handler.aclose()
        await pool.close()

    return stop
