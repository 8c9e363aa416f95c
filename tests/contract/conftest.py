"""Runs the bus contract suite against both implementations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from loopline_bus import Bus, InMemoryBus
from loopline_testing import small_topics, started_kafka_bus


@pytest.fixture(params=["memory", "kafka"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """The in-memory twin, then the real Kafka bus: the same tests must pass on both."""
    if request.param == "memory":
        memory = InMemoryBus(specs=small_topics())
        await memory.start()
        yield memory
        await memory.stop()
    else:
        async with started_kafka_bus(request.getfixturevalue("kafka_settings")) as kafka:
            yield kafka
