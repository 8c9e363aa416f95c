"""On a cluster of three brokers, topics with one copy refuse the services' start; `loopline
infra topics --fix` moves them onto three brokers and the services then start and run.

The cluster is private (free ports, a home of its own, wiped after); Redis and PostgreSQL are
the shared ones, in a namespace of the test's own.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from loopline_bus import KafkaBus, TopicAdmin
from loopline_events import ALL_TOPICS, RunCompleted
from loopline_infra import InfraError, default_paths
from loopline_runtime import Endpoints, KafkaSettings
from loopline_testing._system import drop_namespace, launch_system
from loopline_testing.chaos import PrivateInfra
from loopline_testing.plugin import unique_prefix

from loopline.sdk import Loopline

ASK_FOR_THREE = {"LOOPLINE_KAFKA_REPLICATION_FACTOR": "3"}


@pytest.fixture
async def cluster(loopline_endpoints: Endpoints) -> AsyncIterator[PrivateInfra]:
    """A private Kafka of three brokers, with the shared Redis and PostgreSQL."""
    async with PrivateInfra(say=print, brokers=3, servers=()) as infra:
        statuses = await infra.infra.status()
        assert [s.name for s in statuses] == ["kafka-1", "kafka-2", "kafka-3"]
        assert all(s.state == "ready" for s in statuses)
        assert sorted(s.role for s in statuses) == ["active controller", "controller", "controller"]
        yield infra


def infra_topics(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopline.cli", "infra", "topics", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )


@pytest.mark.timeout(400)
async def test_one_copy_refuses_the_start_until_the_fix_moves_topics_onto_three_brokers(
    cluster: PrivateInfra,
) -> None:
    home = Path(tempfile.mkdtemp(prefix="e2e-", dir=default_paths().home))
    with cluster.granted(unique_prefix()) as namespace:
        await _refused_then_fixed(cluster, namespace, home)


async def _refused_then_fixed(cluster: PrivateInfra, namespace: str, home: Path) -> None:
    endpoints = cluster.endpoints
    kafka = endpoints.kafka.model_copy(update={"topic_prefix": namespace})
    # The CLI of the machine that runs the cluster: its credentials (the operator's, and the
    # admin's to move partitions) from the cluster's home.
    env = {"LOOPLINE_HOME": str(cluster.home), "LOOPLINE_KAFKA_TOPIC_PREFIX": namespace}
    store = cluster.store
    # The services on the declared topics, asking for three copies (refused until they are).
    launch = functools.partial(
        launch_system, endpoints, namespace, home, 1, ASK_FOR_THREE, store=store, partitions=None
    )
    try:
        # Someone created the topics with one copy (an older Loopline did, whatever the cluster).
        await KafkaBus(settings=kafka.model_copy(update={"replication_factor": 1})).ensure_topics()

        with pytest.raises(InfraError) as refused:
            await asyncio.to_thread(launch)
        message = str(refused.value)
        topics = len(ALL_TOPICS)
        partitions = sum(spec.partitions for spec in ALL_TOPICS)
        assert f"cannot start: {topics} topic(s) on the cluster put data at risk" in message
        assert f"{namespace}agent.goals, {namespace}agent.control" in message
        assert "replication factor is 1, wanted 3 (LOOPLINE_KAFKA_REPLICATION_FACTOR=3)" in message
        assert (
            f"Fix: LOOPLINE_KAFKA_BOOTSTRAP={kafka.bootstrap} LOOPLINE_KAFKA_TOPIC_PREFIX="
            f"{namespace} LOOPLINE_KAFKA_REPLICATION_FACTOR=3 loopline infra topics --fix"
        ) in message
        assert "Traceback" not in message

        shown = await asyncio.to_thread(infra_topics, env | ASK_FOR_THREE)
        assert shown.returncode == 1, shown.stderr
        assert "RISK" in shown.stdout

        fixed = await asyncio.to_thread(infra_topics, env | ASK_FOR_THREE, "--fix")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert (
            f"reassigning {partitions} partition(s) of {topics} topic(s) onto more brokers"
            in fixed.stdout
        )
        assert "Every topic is as Loopline needs it." in fixed.stdout
        await assert_three_copies_two_in_sync(kafka)

        system = await asyncio.to_thread(launch)
        try:
            async with Loopline(system.kafka, producer="e2e") as client:
                run = await client.submit("What is 6 * 7?")
                outcome = (await run.result(timeout=90)).payload
            assert isinstance(outcome, RunCompleted)
            assert "42" in outcome.answer
        finally:
            await asyncio.to_thread(system.services.down, say=lambda _: None)
    finally:
        await drop_namespace(endpoints, namespace)
        shutil.rmtree(home, ignore_errors=True)


async def assert_three_copies_two_in_sync(kafka: KafkaSettings) -> None:
    names = [f"{kafka.topic_prefix}{s.name}" for s in ALL_TOPICS]
    async with TopicAdmin(kafka) as admin:
        found = await admin.describe(names)
        assert await admin.in_sync(names)
    assert {(f.replication, f.configs["min.insync.replicas"]) for f in found.values()} == {(3, "2")}
    assert len(found) == len(ALL_TOPICS)
