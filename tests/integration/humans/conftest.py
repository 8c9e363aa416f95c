"""Memory's projection with held calls, in the test's namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from loopline_bus import KafkaBus
from loopline_runtime import Endpoints
from loopline_testing.approvals import HeldRuns


@pytest.fixture
def namespace(
    loopline_endpoints: Endpoints, kafka_bus: KafkaBus, cleanup_namespace: None
) -> Endpoints:
    """The endpoints, in the test's namespace (its topics made; all of it dropped after)."""
    return loopline_endpoints.model_copy(update={"kafka": kafka_bus.settings})


@pytest.fixture
async def held_runs(namespace: Endpoints) -> AsyncIterator[HeldRuns]:
    """Writes runs with held calls to memory's projection, as memory writes them."""
    runs = await HeldRuns.open(namespace)
    try:
        yield runs
    finally:
        await runs.close()
