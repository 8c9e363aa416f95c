"""Goals produced by librdkafka clients (kcat here; confluent-kafka, the Go and Node clients
alike), whose default partitioner is CRC32-based, not murmur2: memory routes each to its run's
partition, so two replicas of each service run them, and replay, rerun and fork find them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from loopline_bus import partition_for
from loopline_events import GOALS, RunCompleted
from loopline_testing import System

from loopline.sdk import Loopline

RUNS = 6


async def _landed(system: System, run_ids: set[str]) -> dict[str, int]:
    """The partition of agent.goals each run's first record landed in (kcat's choice)."""
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
                        if r.key is not None:
                            found.setdefault(r.key.decode(), tp.partition)
    finally:
        await consumer.stop()
    return found


async def test_goals_from_a_crc32_client_run_and_replay_with_two_replicas(
    start_system: Callable[..., System],
) -> None:
    system = start_system(replicas=2)
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
    assert all(isinstance(o.payload, RunCompleted) for o in outcomes.values())

    landed = await _landed(system, run_ids)
    misplaced = [r for r, p in landed.items() if partition_for(r.encode(), GOALS.partitions) != p]
    assert misplaced, "kcat put every goal where murmur2 would: the test proves nothing"

    async with Loopline(system.kafka, producer="e2e") as client:
        for run_id in misplaced:  # the SDK finds each
            replayed = await client.replay(run_id)
            assert replayed.state is not None
            assert replayed.state.answer == outcomes[run_id].payload.answer
    # And the CLI, as a user types it.
    run_id = misplaced[0]
    replayed_cli = await asyncio.to_thread(system.cli, "replay", run_id, "--json")
    assert replayed_cli.returncode == 0, replayed_cli.stderr
    state = json.loads(replayed_cli.stdout)["state"]
    assert (state["status"], state["answer"]) == ("completed", outcomes[run_id].payload.answer)
    rerun = await asyncio.to_thread(system.cli, "rerun", run_id)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "no divergence" in rerun.stdout
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


async def test_a_run_the_log_does_not_hold_is_a_clear_message_and_exit_1(system: System) -> None:
    for command in (["replay", "nobody"], ["rerun", "nobody"], ["fork", "nobody", "--from", "1"]):
        answer = await asyncio.to_thread(system.cli, *command)
        assert answer.returncode == 1, command
        assert "error: " in answer.stderr
        assert "run nobody" in answer.stderr
        assert "Traceback" not in answer.stderr + answer.stdout
