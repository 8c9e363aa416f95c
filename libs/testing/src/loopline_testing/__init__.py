"""A pytest plugin (`loopline`): the real Loopline infrastructure as session fixtures.

The session brings Kafka, Redis and PostgreSQL up through the same code as `make infra-up`
(or uses the endpoints given by LOOPLINE_KAFKA_BOOTSTRAP / LOOPLINE_REDIS_URL /
LOOPLINE_POSTGRES_DSN when LOOPLINE_TEST_EXTERNAL_INFRA=1). A component that cannot start
fails the run; nothing is skipped. Every test gets its own topic prefix.
"""

from loopline_testing._system import (
    TEST_AGENTS,
    ResultCollector,
    System,
    drop_namespace,
    launch_system,
    running_system,
)
from loopline_testing.plugin import small_topics, started_kafka_bus, unique_prefix

__all__ = [
    "TEST_AGENTS",
    "ResultCollector",
    "System",
    "drop_namespace",
    "launch_system",
    "running_system",
    "small_topics",
    "started_kafka_bus",
    "unique_prefix",
]
