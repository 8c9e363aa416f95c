"""The planner service's one wiring point."""

from __future__ import annotations

from loopline_bus import KafkaBus
from loopline_events import CONTEXTS
from loopline_runtime import Stop, load_endpoints

from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler

GROUP = "planner"


async def start() -> Stop:
    """Subscribe to contexts; return the function that stops it all."""
    endpoints = load_endpoints()
    handler = PlannerHandler(ModelSettings(), build_model)
    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
    await bus.ensure_topics()
    await bus.start()
    await bus.subscribe(GROUP, [CONTEXTS.name], handler).start()

    async def stop() -> None:
        await bus.stop()
        await handler.aclose()

    return stop
