"""Bad input on every topic of the loop, written as a buggy or hostile client would: bytes that
are not JSON, JSON of the wrong shape, a schema version from the future, a payload far over the
topic's limit. Each is dead-lettered by every service that reads the topic, with its kind and
reason; the services keep running; and a good run right behind it, in the same partition,
still completes.

One system serves the module (each case keys its messages apart): starting four processes per
case would cost more than the cases."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from loopline_events import (
    CONTROL,
    CancelRun,
    Envelope,
    ModelDecided,
    RunCancelled,
    RunCompleted,
)
from loopline_runtime import Endpoints
from loopline_testing import System, running_system
from loopline_testing.probes import (
    Placed,
    envelope,
    produce,
    sibling_run_id,
    wait_for_dead_letters,
    wait_until_passed,
)

from loopline.sdk import Loopline

LIMIT = 1024 * 1024
"""What every loop topic takes."""


WATCHDOG = "recovery-watchdog"
"""Recovery's watchdog reads every loop topic too: it peeks at each record, decodes none
whole and dead-letters nothing, but it must go past a bad record like the others."""


@dataclass(frozen=True)
class Topic:
    """A loop topic, the services that dead-letter what they cannot read of it, and a valid
    payload of one of its events."""

    name: str
    event_type: str
    readers: tuple[str, ...]
    payload: dict[str, Any]


TOPICS = (
    Topic("agent.goals", "GoalSubmitted", ("memory",), {"goal": "What is 1 + 1?"}),
    Topic("agent.control", "CancelRun", ("memory",), {"reason": "a test"}),
    Topic(
        "agent.contexts",
        "ContextAssembled",
        ("planner",),
        {"agent": "default", "model": "demo", "messages": [{"role": "user", "content": "hi"}]},
    ),
    Topic(
        "agent.decisions",
        "ModelDecided",
        ("memory", "tool-executor"),
        {"model": "demo", "final_answer": "done"},
    ),
    Topic(
        "agent.observations",
        "ToolCallSucceeded",
        ("memory",),
        {"call_id": "call_1_0", "tool": "calculator", "output": "2"},
    ),
    Topic("agent.results", "RunCompleted", (), {"answer": "2", "steps": 1}),
)


@dataclass(frozen=True)
class Bad:
    """A kind of bad message: its bytes, the dead-letter kind it must get, and a fragment of
    the reason that must be given."""

    name: str
    kind: str
    reason: str
    size: int = 0
    """For an oversized one: its size once decompressed."""

    def value(self, topic: Topic, run_id: str) -> bytes:
        if self.name == "undecodable":
            return b"\xff\xfe{this is not JSON"
        if self.name == "wrong schema":
            return envelope(topic.event_type, run_id, ["not", "an", "object"])
        if self.name == "unknown version":
            return envelope(topic.event_type, run_id, topic.payload, schema_version=99)
        # Valid, but too big: unknown envelope fields are ignored, so it decodes.
        return envelope(topic.event_type, run_id, topic.payload, padding="x" * self.size)

    @property
    def compressed(self) -> bool:
        # The broker checks the compressed size: only so does a too-big payload get through.
        return self.size > 0


BAD = (
    Bad("undecodable", "undecodable", "not JSON"),
    Bad("wrong schema", "schema", "payload"),
    Bad("unknown version", "unknown_version", "v99 is newer than this reader's"),
    Bad("oversized", "oversized", "exceeds", size=LIMIT + LIMIT // 4),
)
FAR_OVERSIZED = Bad("far oversized", "oversized", "exceeds", size=4 * LIMIT)


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints) -> Iterator[System]:
    with running_system(loopline_endpoints) as running:
        yield running


@pytest.mark.timeout(180)
@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.name)
@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
async def test_bad_input_is_dead_lettered_with_its_reason_and_the_run_behind_it_completes(
    system: System, topic: Topic, bad: Bad
) -> None:
    key = f"bad-{uuid.uuid4().hex[:10]}"
    good = sibling_run_id(key)
    async with Loopline(system.kafka, producer="bad-input") as client:
        if topic.name == CONTROL.name:
            placed, outcome = await _bad_command_then_good_one(
                system, client, topic, bad, key, good
            )
            assert isinstance(outcome.payload, RunCancelled), _told(outcome)
        else:
            placed = await _produce(system, topic, bad, key)
            run = await client.submit("What is 1 + 1?", run_id=good)
            outcome = await run.result(timeout=90)
            assert isinstance(outcome.payload, RunCompleted), outcome.payload
            assert "1 + 1 = 2" in outcome.payload.answer

    await assert_dead_lettered_and_passed(system, topic, bad, key, placed)


async def assert_dead_lettered_and_passed(
    system: System, topic: Topic, bad: Bad, key: str, placed: Placed
) -> None:
    """Every service that reads the topic dead-lettered the message with its kind and reason
    (the watchdog only skips it), went on past it (committed), and is still running."""
    entries = await wait_for_dead_letters(system, placed, groups=len(topic.readers), timeout=20)
    by_group = {e["consumer_group"]: e for e in entries}
    assert set(topic.readers) <= by_group.keys(), entries
    for reader in topic.readers:
        entry = by_group[reader]
        assert (entry["run_id"], entry["kind"]) == (key, bad.kind), entry
        assert bad.reason in entry["error"], entry
    for reader in (*topic.readers, WATCHDOG):
        assert await wait_until_passed(system, reader, placed, timeout=20), f"{reader} is stuck"
    assert all(s.state == "running" for s in system.services.status()), system.services.status()


async def test_an_operator_finds_the_dead_letter_with_the_cli(system: System) -> None:
    key = f"bad-{uuid.uuid4().hex[:10]}"
    async with Loopline(system.kafka, producer="bad-input") as client:
        await client._bus.publish_raw("agent.goals", b"{not json", key=key.encode())
    listed: list[dict[str, Any]] = []
    for _ in range(100):
        shown = await asyncio.to_thread(system.cli, "dlq", "ls", "--run", key, "--json")
        assert shown.returncode == 0, shown.stderr
        listed = json.loads(shown.stdout)
        if listed:
            break
        await asyncio.sleep(0.2)
    assert [(d["run_id"], d["source_topic"], d["kind"]) for d in listed] == [
        (key, "agent.goals", "undecodable")
    ]
    assert "not JSON" in listed[0]["error"]


@pytest.mark.timeout(120)
async def test_a_payload_far_over_the_limit_is_dead_lettered_too(system: System) -> None:
    topic = TOPICS[0]
    key = f"bad-{uuid.uuid4().hex[:10]}"
    placed = await _produce(system, topic, FAR_OVERSIZED, key)
    await assert_dead_lettered_and_passed(system, topic, FAR_OVERSIZED, key, placed)


async def _produce(system: System, topic: Topic, bad: Bad, key: str) -> Placed:
    return await produce(
        system, topic.name, bad.value(topic, key), key=key, compressed=bad.compressed
    )


async def _bad_command_then_good_one(
    system: System, client: Loopline, topic: Topic, bad: Bad, key: str, good: str
) -> tuple[Placed, Envelope[Any]]:
    """A long run under way, a bad command, then a good CancelRun of that run behind it (same
    partition of agent.control): the run must end cancelled. (Its profile allows 1,000 steps:
    it cannot end by itself while the bad command is dead-lettered.)"""
    run = await client.submit("Count to 1000", run_id=good, agent="counter")
    steps = run.steps()
    async for event in steps:  # under way once the model decided once
        if isinstance(event.payload, ModelDecided):
            break
    placed = await _produce(system, topic, bad, key)
    cancel = Envelope.of(CancelRun(reason="behind a bad command"), run_id=good, producer="test")
    await client._bus.publish(CONTROL.name, cancel)
    outcome = await asyncio.wait_for(_last(steps), 90)
    return placed, outcome


def _told(outcome: Envelope[Any]) -> str:
    """An outcome as a line a failing assertion shows whole."""
    fields = outcome.payload.model_dump(include={"reason", "message", "steps"})
    return f"{outcome.type} at step {outcome.seq}: {fields}"


async def _last(steps: AsyncIterator[Envelope[Any]]) -> Envelope[Any]:
    last = None
    async for event in steps:
        last = event
    assert last is not None
    return last
