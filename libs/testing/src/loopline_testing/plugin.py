"""Fixtures: `loopline_endpoints` and `loopline_access` (session), `topic_prefix`,
`kafka_settings`, `kafka_bus`, and for end-to-end tests `system`, `start_system` and
`cleanup_namespace`.

The session's servers authenticate every client: the tests act as the local operator (as the
CLI does), each test's namespace gets the ACLs of every principal for as long as it runs, and
the services of a test run as their own principals.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from loopline_bus import KafkaBus
from loopline_events import ALL_TOPICS, TopicSpec
from loopline_infra import CredentialStore, Infra, default_paths, grant_namespace, revoke_namespace
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


T = TypeVar("T")


def run_apart(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end in a thread and loop of its own: a fixture may be set up or torn
    down from inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def external_infra() -> bool:
    """Whether the tests run against servers given by the environment."""
    return os.environ.get("LOOPLINE_TEST_EXTERNAL_INFRA") == "1"


@pytest.fixture(scope="session")
def loopline_infra() -> Infra | None:
    """The project's servers, started by `Infra().up()` (None when the env gives them)."""
    if external_infra():
        return None
    infra = Infra()
    infra.paths.home.mkdir(parents=True, exist_ok=True)
    # One worker at a time (pytest-xdist runs several): the first starts what is missing, the
    # others find it running.
    with (infra.paths.home / "infra.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_apart(infra.up(say=lambda line: print(f"[infra] {line}")))
    return infra


@pytest.fixture(scope="session")
def loopline_access(loopline_infra: Infra | None) -> CredentialStore | None:
    """The credentials of every principal of the session's servers (None when the env gives
    the servers: the tests then run with the env's credentials alone)."""
    return loopline_infra.store if loopline_infra is not None else None


@pytest.fixture(scope="session")
def loopline_endpoints(loopline_infra: Infra | None) -> Endpoints:
    """The real Kafka, Redis and PostgreSQL, as the local operator: started by `Infra().up()`,
    or given by the env."""
    if loopline_infra is None:
        return Endpoints(kafka=KafkaSettings(), redis=RedisSettings(), postgres=PostgresSettings())
    return loopline_infra.endpoints()


def session_access(endpoints: Endpoints) -> CredentialStore | None:
    """The credentials of the project's servers, when `endpoints` reach them."""
    if external_infra():
        return None
    store = CredentialStore(default_paths())
    found = store.load()
    if found is None or found.endpoints.kafka_bootstrap != endpoints.kafka.bootstrap:
        return None
    return store


@contextlib.contextmanager
def granted(store: CredentialStore | None, namespace: str) -> Iterator[str]:
    """Every principal's ACLs in `namespace` while the block runs (nothing without `store`)."""
    if store is None:
        yield namespace
        return
    credentials = store.require()
    run_apart(grant_namespace(credentials, namespace))
    try:
        yield namespace
    finally:
        run_apart(revoke_namespace(credentials, namespace))


@pytest.fixture
def topic_prefix(loopline_access: CredentialStore | None) -> Iterator[str]:
    """A namespace of topics and groups for this test alone, with its ACLs."""
    with granted(loopline_access, unique_prefix()) as namespace:
        yield namespace


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
        await delete_topics(settings)


async def delete_topics(settings: KafkaSettings) -> None:
    """Delete every topic of `settings`' namespace (whose name starts with its prefix)."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Coroutine tests end inside their loop before pytest-timeout would stop it."""
    bound_coroutine_tests(items)


pytest_plugins = ["loopline_testing._system", "loopline_testing._longest_first"]
