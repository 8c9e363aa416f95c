"""The planner service's one wiring point."""

from __future__ import annotations

import redis.asyncio as aioredis
from loopline_bus import KafkaBus, SubscriptionOptions
from loopline_events import CONTEXTS
from loopline_runtime import Stop, load_endpoints, load_limits, load_profiles

from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.limiter import Gate, RedisLimiter
from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler

GROUP = "planner"


async def start() -> Stop:
    """Subscribe to contexts; return the function that stops it all."""
    endpoints = load_endpoints()
    namespace = endpoints.kafka.topic_prefix
    redis = aioredis.from_url(endpoints.redis.url)
    cache = ResponseCache(redis, namespace=namespace)
    gate = Gate(RedisLimiter(redis, load_limits(), namespace=namespace))
    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
    handler = PlannerHandler(
        ModelSettings(),
        build_model,
        cache,
        write_behind=True,
        gate=gate,
        profiles=load_profiles(),
        publish=bus.publish_many,
    )
    await bus.ensure_topics()
    await bus.start()
    options = SubscriptionOptions(before_publish=handler.flush)
    subscription = bus.subscribe(GROUP, [CONTEXTS.name], handler, options)
    await subscription.start()

    async def stop() -> None:
        await subscription.stop()
        await handler.hand_back()
        await bus.stop()
        await handler.aclose()

    return stop
