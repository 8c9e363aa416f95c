"""The planner service's one wiring point."""

from __future__ import annotations

import redis.asyncio as aioredis
from loopline_bus import KafkaBus, SubscriptionOptions
from loopline_events import CONTEXTS
from loopline_runtime import Stop, load_endpoints

from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler

GROUP = "planner"


async def start() -> Stop:
    """Subscribe to contexts; return the function that stops it all."""
    endpoints = load_endpoints()
    cache = ResponseCache(
        aioredis.from_url(endpoints.redis.url), namespace=endpoints.kafka.topic_prefix
    )
    handler = PlannerHandler(ModelSettings(), build_model, cache, write_behind=True)
    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
    await bus.ensure_topics()
    await bus.start()
    options = SubscriptionOptions(before_publish=handler.flush)
    await bus.subscribe(GROUP, [CONTEXTS.name], handler, options).start()

    async def stop() -> None:
        await bus.stop()
        await handler.aclose()

    return stop
