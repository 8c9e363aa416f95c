"""Fixtures: `loopline_endpoints` (session), `topic_prefix`, `kafka_settings`, `kafka_bus`,
and for end-to-end tests `system`, `start_system` and `cleanup_namespace`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from loopline_bus import KafkaBus
from loopline_events import ALL_TOPICS, TopicSpec
from loopline_infra import Infra
from loopline_runtime import Endpoints, KafkaSettings, PostgresSettings, RedisSettings

from loopline_testing._deadline import bound_coroutine_tests

TEST_PARTITIONS = 4
"""Partitions per test topic: enough to show per-run ordering, cheap to create and delete."""


def unique_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


def small_topics(partitions: int = TEST_PARTITIONS) -> tuple[TopicSpec, ...]:
    """Every declared topic, with fewer partitions."""
    return tuple(dataclasses.replace(s, partitions=partitions) for s in ALL_TOPICS)


@pytest.fixture(scope="session")
def loopline_endpoints() -> Endpoints:
    """The real Kafka, Redis and PostgreSQL: started by `Infra().up()`, or given by the env."""
    if os.environ.get("LOOPLINE_TEST_EXTERNAL_INFRA") == "1":
        return Endpoints(kafka=KafkaSettings(), redis=RedisSettings(), postgres=PostgresSettings())
    infra = Infra()
    infra.paths.home.mkdir(parents=True, exist_ok=True)
    # One worker at a time (pytest-xdist runs several): the first starts what is missing, the
    # others find it running. Its own thread and loop: the fixture may be first requested from
    # inside a running loop.
    with (infra.paths.home / "infra.lock").open("w") as lock, ThreadPoolExecutor(1) as pool:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pool.submit(
            lambda: asyncio.run(infra.up(say=lambda line: print(f"[infra] {line}")))
        ).result()
    env = infra.env()
    return Endpoints(
        kafka=KafkaSettings(bootstrap=env["LOOPLINE_KAFKA_BOOTSTRAP"]),
        redis=RedisSettings(url=env["LOOPLINE_REDIS_URL"]),
        postgres=PostgresSettings(dsn=env["LOOPLINE_POSTGRES_DSN"]),  # type: ignore[arg-type]
    )


@pytest.fixture
def topic_prefix() -> str:
    """A namespace of topics and groups for this test alone."""
    return unique_prefix()


@pytest.fixture
def kafka_settings(loopline_endpoints: Endpoints, topic_prefix: str) -> KafkaSettings:
    """Kafka settings pointing at the test's own topic namespace."""
    return loopline_endpoints.kafka.model_copy(update={"topic_prefix": topic_prefix})


@pytest.fixture
async def kafka_bus(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaBus]:
    """A started KafkaBus with every topic created in the test's namespace; deleted after."""
    async with started_kafka_bus(kafka_settings) as bus:
        yield bus


@contextlib.asynccontextmanager
async def started_kafka_bus(settings: KafkaSettings) -> AsyncIterator[KafkaBus]:
    """A KafkaBus on the namespace of `settings`, its topics created, and deleted on exit."""
    bus = KafkaBus(settings=settings, specs=small_topics(), client_id="test")
    await bus.ensure_topics()
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()
        await delete_topics(settings.bootstrap, settings.topic_prefix)


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with `prefix`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Coroutine tests end inside their loop before pytest-timeout would stop it."""
    bound_coroutine_tests(items)


pytest_plugins = ["loopline_testing._system"]
