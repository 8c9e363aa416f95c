"""Goals produced by librdkafka clients (kcat here; confluent-kafka, the Go and Node clients
alike), whose default partitioner is CRC32-based, not murmur2: memory routes each to its run's
partition, so two replicas of each service run them, and replay, rerun and fork find them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from loopline_bus import ADMITTED_HEADER, partition_for
from loopline_events import GOALS, RunCompleted
from loopline_runtime import Endpoints
from loopline_testing import System, running_system

from loopline.sdk import Loopline

RUNS = 6


async def _landed(system: System, run_ids: set[str]) -> dict[str, int]:
    """The partition of agent.goals each run's goal landed in (kcat's choice), not the copy
    memory admits to its run's partition (which may be read first)."""
    consumer = AIOKafkaConsumer(
        system.kafka.topic_prefix + "agent.goals",
        **system.kafka.client_options(),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: dict[str, int] = {}
    try:
        async with asyncio.timeout(30):
            while not run_ids <= found.keys():
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for r in records:
                        admitted = any(k == ADMITTED_HEADER for k, _ in r.headers or ())
                        if r.key is not None and not admitted:
                            found.setdefault(r.key.decode(), tp.partition)
    finally:
        await consumer.stop()
    return found


@dataclass(frozen=True)
class Crc32Runs:
    """Runs whose goals kcat produced, as they ended, and those it put where murmur2 would not."""

    system: System
    outcomes: dict[str, Any]
    misplaced: list[str]


@pytest.fixture(scope="module")
def two_replicas(loopline_endpoints: Endpoints) -> Iterator[System]:
    # The declared partitions: with few, CRC32 and murmur2 agree too often to prove anything.
    with running_system(loopline_endpoints, replicas=2, partitions=None) as running:
        yield running


@pytest.fixture(scope="module")
def crc32_runs(two_replicas: System) -> Crc32Runs:
    """RUNS goals produced with kcat (librdkafka's CRC32 partitioner), run to their end by two
    replicas of each service."""
    return asyncio.run(_produce_and_run(two_replicas))


async def _produce_and_run(system: System) -> Crc32Runs:
    run_ids = {f"kcat-{uuid.uuid4().hex[:8]}" for _ in range(RUNS)}
    async with system.results() as results:
        for run_id in run_ids:
            goal: dict[str, Any] = {
                "type": "GoalSubmitted",
                "run_id": run_id,
                "payload": {"goal": "Compute 2 + 3, then multiply the result by 4"},
            }
            await asyncio.to_thread(system.kcat_produce, "agent.goals", run_id, json.dumps(goal))
        outcomes = await results.wait_for(run_ids, timeout=120)
    landed = await _landed(system, run_ids)
    misplaced = [r for r, p in landed.items() if partition_for(r.encode(), GOALS.partitions) != p]
    return Crc32Runs(system, dict(outcomes), sorted(misplaced))


async def test_goals_from_a_crc32_client_run_with_two_replicas_and_the_sdk_replays_them(
    crc32_runs: Crc32Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replay folds with the profiles the services ran.
    agents = crc32_runs.system.env["LOOPLINE_AGENTS_FILE"]
    monkeypatch.setenv("LOOPLINE_AGENTS_FILE", agents)
    outcomes = crc32_runs.outcomes
    assert all(isinstance(o.payload, RunCompleted) for o in outcomes.values())
    assert crc32_runs.misplaced, "kcat put every goal where murmur2 would: the test proves nothing"
    async with Loopline(crc32_runs.system.kafka, producer="e2e") as client:
        for run_id in crc32_runs.misplaced:  # the SDK finds each
            replayed = await client.replay(run_id)
            assert replayed.state is not None
            assert replayed.state.answer == outcomes[run_id].payload.answer


async def test_the_cli_replays_and_reruns_a_run_whose_goal_kcat_produced(
    crc32_runs: Crc32Runs,
) -> None:
    system, run_id = crc32_runs.system, crc32_runs.misplaced[0]
    answer = crc32_runs.outcomes[run_id].payload.answer
    replayed_cli = await asyncio.to_thread(system.cli, "replay", run_id, "--json")
    assert replayed_cli.returncode == 0, replayed_cli.stderr
    state = json.loads(replayed_cli.stdout)["state"]
    assert (state["status"], state["answer"]) == ("completed", answer)
    rerun = await asyncio.to_thread(system.cli, "rerun", run_id)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "no divergence" in rerun.stdout


async def test_the_cli_forks_a_run_whose_goal_kcat_produced(crc32_runs: Crc32Runs) -> None:
    system, run_id = crc32_runs.system, crc32_runs.misplaced[0]
    try:
        forked = await asyncio.to_thread(
            system.cli, "fork", run_id, "--from", "1", "--wait", timeout=45
        )
    except subprocess.TimeoutExpired as hung:  # tell where the fork stood, and the services
        said = f"{hung.stdout!r}\n{hung.stderr!r}"
        pytest.fail(f"fork --wait got no end in 45 s:\n{said}\n{_logs(system)}")
    assert forked.returncode == 0, forked.stdout + forked.stderr


def _logs(system: System) -> str:
    """The last lines of every service instance's log."""
    tails = []
    for log in sorted(system.services.dir.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-25:]
        tails.append(f"--- {log.name}\n" + "\n".join(lines))
    return "\n".join(tails)


async def test_a_run_the_log_does_not_hold_is_a_clear_message_and_exit_1(
    two_replicas: System,
) -> None:
    for command in (["replay", "nobody"], ["rerun", "nobody"], ["fork", "nobody", "--from", "1"]):
        answer = await asyncio.to_thread(two_replicas.cli, *command)
        assert answer.returncode == 1, command
        assert "error: " in answer.stderr
        assert "run nobody" in answer.stderr
        assert "Traceback" not in answer.stderr + answer.stdout
