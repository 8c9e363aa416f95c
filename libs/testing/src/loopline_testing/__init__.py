"""A pytest plugin (`loopline`): the real Loopline infrastructure as session fixtures.

The session brings Kafka, Redis and PostgreSQL up through the same code as `make infra-up`
(or uses the endpoints given by LOOPLINE_KAFKA_BOOTSTRAP / LOOPLINE_REDIS_URL /
LOOPLINE_POSTGRES_DSN when LOOPLINE_TEST_EXTERNAL_INFRA=1). A component that cannot start
fails the run; nothing is skipped. Every test gets its own topic prefix.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline_testing._system import (
        TEST_AGENTS,
        ResultCollector,
        System,
        drop_namespace,
        launch_system,
        running_system,
        stop_system,
    )
    from loopline_testing.plugin import small_topics, started_kafka_bus, unique_prefix

_WHERE = {
    "TEST_AGENTS": "_system",
    "ResultCollector": "_system",
    "System": "_system",
    "drop_namespace": "_system",
    "launch_system": "_system",
    "running_system": "_system",
    "stop_system": "_system",
    "small_topics": "plugin",
    "started_kafka_bus": "plugin",
    "unique_prefix": "plugin",
}
"""Loaded when first asked for: a service loading the package's test tools (`effects`) loads
neither pytest nor the fixtures."""


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "TEST_AGENTS",
    "ResultCollector",
    "System",
    "drop_namespace",
    "launch_system",
    "running_system",
    "small_topics",
    "started_kafka_bus",
    "stop_system",
    "unique_prefix",
]
