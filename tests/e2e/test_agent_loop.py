"""The agent loop end to end: four services as separate processes, only Kafka between them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from loopline_events import (
    Budget,
    FailureReason,
    RunCompleted,
    RunFailed,
    ToolCallSucceeded,
)
from loopline_runtime import Endpoints, schema_name
from loopline_testing import System, running_system
from loopline_testing.plugin import TEST_PARTITIONS

from loopline.sdk import Loopline


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints) -> Iterator[System]:
    """The four services, one of each, shared by the module's tests (each runs runs of its
    own, and nothing here stops a service)."""
    with running_system(loopline_endpoints) as running:
        yield running


async def test_a_goal_needing_two_tool_calls_completes_with_the_right_answer(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Compute 17 + 25, then multiply the result by 3")
        steps = [e async for e in run.steps()]
    tools = [e.payload for e in steps if isinstance(e.payload, ToolCallSucceeded)]
    assert [(t.tool, t.output) for t in tools] == [("calculator", "42"), ("calculator", "126")]
    outcome = steps[-1].payload
    assert isinstance(outcome, RunCompleted)
    assert "126" in outcome.answer
    assert outcome.steps == 3
    assert outcome.usage.total_tokens > 0


async def test_fifty_goals_at_once_each_get_their_own_answer(system: System) -> None:
    await _fifty_concurrent_runs(system)


async def _fifty_concurrent_runs(system: System) -> None:
    expected: dict[str, int] = {}
    async with system.results() as results, Loopline(system.kafka, producer="e2e") as client:
        for i in range(50):
            a, b, c = i, 2 * i + 1, i % 7 + 2
            run_id = f"r{i}-{uuid.uuid4().hex[:6]}"
            expected[run_id] = (a + b) * c
            goal = f"Compute {a} + {b}, then multiply the result by {c}"
            await client._bus.publish(  # one stream for all results, no watcher per run
                "agent.goals", _goal_event(goal, run_id)
            )
        outcomes = await results.wait_for(set(expected), timeout=120)
    for run_id, answer in expected.items():
        payload = outcomes[run_id].payload
        assert isinstance(payload, RunCompleted), payload
        assert str(answer) in payload.answer, (run_id, payload.answer)


def _goal_event(goal: str, run_id: str, agent: str = "default") -> Any:
    from loopline_events import Envelope, GoalSubmitted

    return Envelope.of(GoalSubmitted(goal=goal, agent=agent), run_id=run_id, producer="e2e")


async def test_a_run_over_its_max_steps_fails_with_that_reason(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Count to 100", budget=Budget(max_steps=4))
        outcome = (await run.result(timeout=60)).payload
    assert isinstance(outcome, RunFailed)
    assert outcome.reason is FailureReason.MAX_STEPS
    assert outcome.steps == 4


async def test_two_replicas_of_each_service_split_the_partitions(
    start_system: Callable[..., System],
) -> None:
    system = start_system(replicas=2)
    await _fifty_concurrent_runs(system)
    for service in ("memory", "planner", "tool-executor", "recovery"):
        split = await _settled_split(system, service)
        assert all(split), f"a replica of {service} owns no partition: {split}"
        assert not split[0] & split[1], f"{service} replicas share partitions"
        topics = {p.rsplit(":", 1)[0] for p in split[0] | split[1]}
        every = TEST_PARTITIONS * len(topics)
        assert len(split[0] | split[1]) == every  # every partition has an owner


async def _settled_split(system: System, service: str) -> list[set[str]]:
    """The two replicas' partitions once the group has settled (a rebalance takes a moment)."""
    split: list[set[str]] = []
    for _ in range(100):
        split = [_last_assignment(system, f"{service}-{i}") for i in (1, 2)]
        if all(split) and not split[0] & split[1]:
            break
        await asyncio.sleep(0.2)
    return split


def _last_assignment(system: System, instance: str) -> set[str]:
    """The partitions an instance says it was given last (the bus logs each assignment)."""
    log = system.services.dir / f"{instance}.log"
    lines = [line for line in log.read_text().splitlines() if " assignment {" in line]
    if not lines:
        return set()
    return set(json.loads(lines[-1].split(" assignment ", 1)[1])["partitions"])


async def test_a_goal_produced_by_any_kafka_client_is_run(system: System) -> None:
    run_id = f"kcat-{uuid.uuid4().hex[:8]}"
    goal = json.dumps(
        {"type": "GoalSubmitted", "run_id": run_id, "payload": {"goal": "What is 6 * 7?"}}
    )
    async with system.results() as results:
        # As a tenant's client would: kcat with the credentials of `client-default`.
        await asyncio.to_thread(
            system.kcat_produce, "agent.goals", run_id, goal, principal="client-default"
        )
        outcome = (await results.wait_for({run_id}))[run_id]
    assert isinstance(outcome.payload, RunCompleted)
    assert "42" in outcome.payload.answer
    assert outcome.run_id == run_id


async def test_the_cli_submits_waits_and_shows_the_timeline(system: System) -> None:
    done = await asyncio.to_thread(
        system.cli, "submit", "Compute 2 + 3, then multiply the result by 4", "--wait"
    )
    assert done.returncode == 0, done.stderr
    assert "calculator" in done.stdout
    assert "20" in done.stdout.splitlines()[-1]
    run_id = done.stdout.split()[1]

    shown = await asyncio.to_thread(system.cli, "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    types = [e["type"] for e in json.loads(shown.stdout)["events"]]
    assert types[0] == "GoalSubmitted"
    assert types[-1] == "RunCompleted"
    assert types.count("ToolCallSucceeded") == 2

    listed = await asyncio.to_thread(system.cli, "runs", "--json")
    assert any(
        r["run_id"] == run_id and r["status"] == "completed" for r in json.loads(listed.stdout)
    )

    failed = await asyncio.to_thread(
        system.cli, "submit", "Count to 50", "--max-steps", "2", "--wait", "--json"
    )
    assert failed.returncode == 1
    last = json.loads(failed.stdout.splitlines()[-1])
    assert last["type"] == "RunFailed"
    assert last["payload"]["reason"] == "max_steps"


async def test_memory_keeps_the_run_durably(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 3 * 3?")
        await run.result(timeout=60)
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        schema = schema_name("memory", system.kafka.topic_prefix)
        row = await conn.fetchrow(
            f'SELECT status, answer, steps FROM "{schema}".runs WHERE run_id = $1', run.run_id
        )
    finally:
        await conn.close()
    assert row is not None
    assert (row["status"], row["steps"]) == ("completed", 2)
    assert "9" in row["answer"]


async def test_a_goal_for_a_taken_run_id_is_rejected_and_submit_says_so(system: System) -> None:
    run_id = f"taken-{uuid.uuid4().hex[:8]}"
    first = await asyncio.to_thread(
        system.cli, "submit", "What is 6 * 7?", "--run-id", run_id, "--wait"
    )
    assert first.returncode == 0, first.stdout + first.stderr
    second = await asyncio.to_thread(
        system.cli, "submit", "What is 1 + 1?", "--run-id", run_id, "--wait"
    )
    assert second.returncode == 1
    assert "rejected" in second.stdout
    assert f"the run id {run_id!r} is taken" in second.stdout
    async with Loopline(system.kafka, producer="e2e") as client:
        replayed = await client.replay(run_id)
    assert replayed.state is not None
    assert replayed.state.goal == "What is 6 * 7?"  # the run is untouched
