"""Recovery on the real Kafka and PostgreSQL: transient dead letters come back through the
retry tiers, the rest are parked and fail their run (recovery asks memory to, with FailRun on
agent.control), and an operator can redrive them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import pytest
from loopline_bus import EventStream, KafkaBus, Outbound, SubscriptionOptions
from loopline_events import (
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    Envelope,
    FailRun,
    FailureReason,
    ModelDecided,
    ToolCallSucceeded,
    TransientError,
)
from loopline_recovery.main import start as start_recovery
from loopline_runtime import Endpoints, schema_name

StartRecovery = Callable[..., Awaitable[None]]


class Flaky(TransientError):  # noqa: N818 - a condition the bus retries
    """A dependency that is down for a while: retryable."""


class FlakyService:
    """Handles decisions, failing transiently for its first `failures` deliveries."""

    def __init__(self, failures: int):
        self.failures = failures
        self.deliveries: list[str] = []

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        self.deliveries.append(event.run_id)
        if len([r for r in self.deliveries if r == event.run_id]) <= self.failures:
            raise Flaky("the database is restarting")
        done = ToolCallSucceeded(call_id="c", tool="t", output=f"handled {event.run_id}")
        return [Outbound(OBSERVATIONS.name, event.follow(done, producer="flaky"))]


@pytest.fixture
async def recovery(
    kafka_bus: KafkaBus,
    loopline_endpoints: Endpoints,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[StartRecovery]:
    """Starts the recovery service in this process, in the test's namespace."""
    stops = []

    async def start(**settings: str) -> None:
        monkeypatch.setenv("LOOPLINE_KAFKA_BOOTSTRAP", loopline_endpoints.kafka.bootstrap)
        monkeypatch.setenv("LOOPLINE_KAFKA_TOPIC_PREFIX", topic_prefix)
        monkeypatch.setenv("LOOPLINE_POSTGRES_DSN", _dsn(loopline_endpoints))
        for name, value in settings.items():
            monkeypatch.setenv(f"LOOPLINE_RECOVERY_{name.upper()}", value)
        stops.append(await start_recovery())

    yield start
    for stop in stops:
        await stop()
    conn = await asyncpg.connect(_dsn(loopline_endpoints))
    try:
        await conn.execute(
            f'DROP SCHEMA IF EXISTS "{schema_name("recovery", topic_prefix)}" CASCADE'
        )
    finally:
        await conn.close()


def _dsn(endpoints: Endpoints) -> str:
    return endpoints.postgres.dsn.get_secret_value()


async def _serve(bus: KafkaBus, topic: str, handler: Any) -> None:
    # One try per delivery: the failure goes to the dead-letter topic at once.
    subscription = bus.subscribe("flaky", [topic], handler, SubscriptionOptions(max_attempts=1))
    await subscription.start()


def _decision(run_id: str) -> Envelope[ModelDecided]:
    decided = ModelDecided(agent="a", model="demo", final_answer="done")
    return Envelope.of(decided, run_id=run_id, producer="planner")


async def _first(stream: EventStream, match: Callable[[Envelope[Any]], bool]) -> Envelope[Any]:
    async def find() -> Envelope[Any]:
        async for event in stream.events():
            if match(event):
                return event
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), 90)


async def _letters(endpoints: Endpoints, prefix: str, run_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_dsn(endpoints))
    try:
        return list(
            await conn.fetch(
                f'SELECT * FROM "{schema_name("recovery", prefix)}".dead_letters '
                "WHERE run_id = $1 ORDER BY recorded_at",
                run_id,
            )
        )
    finally:
        await conn.close()


async def test_a_transient_failure_is_retried_through_the_retry_tiers_until_it_succeeds(
    kafka_bus: KafkaBus, recovery: StartRecovery, loopline_endpoints: Endpoints
) -> None:
    await recovery(retry_delays_s="[0.5, 1, 2]")
    service = FlakyService(failures=2)
    await _serve(kafka_bus, DECISIONS.name, service)
    stream = EventStream(kafka_bus.settings, topics=[OBSERVATIONS.name])
    await stream.start()
    await kafka_bus.publish(DECISIONS.name, _decision("run-flaky"))
    # A message of the same run behind it is not held up by the waiting retry.
    await kafka_bus.publish(DECISIONS.name, _decision("run-flaky-2"))
    done = await _first(stream, lambda e: e.run_id == "run-flaky")
    await stream.stop()
    assert done.payload.output == "handled run-flaky"
    assert service.deliveries.index("run-flaky-2") < 2  # handled before any retry came back
    assert service.deliveries.count("run-flaky") == 3
    letters = await _letters(loopline_endpoints, kafka_bus.prefix, "run-flaky")
    assert [(r["category"], r["status"], r["retries"]) for r in letters] == [
        ("transient", "retrying", 0),
        ("transient", "retrying", 1),
    ]


async def test_retries_exhausted_park_the_letter_and_fail_the_run_as_stalled(
    kafka_bus: KafkaBus, recovery: StartRecovery, loopline_endpoints: Endpoints
) -> None:
    await recovery(retry_delays_s="[0.2, 0.2, 0.2]", max_retries="2")
    await _serve(kafka_bus, DECISIONS.name, FlakyService(failures=100))
    results = EventStream(kafka_bus.settings, topics=[CONTROL.name])
    await results.start()
    await kafka_bus.publish(DECISIONS.name, _decision("run-down"))
    failed = await _first(results, lambda e: e.run_id == "run-down")
    await results.stop()
    assert isinstance(failed.payload, FailRun)
    assert failed.payload.reason is FailureReason.STALLED
    assert "after 2 retries" in failed.payload.message
    letters = await _letters(loopline_endpoints, kafka_bus.prefix, "run-down")
    assert [(r["status"], r["retries"]) for r in letters] == [
        ("retrying", 0),
        ("retrying", 1),
        ("parked", 2),
    ]


async def test_an_invalid_goal_is_parked_and_its_run_failed_with_the_reason(
    kafka_bus: KafkaBus, recovery: StartRecovery
) -> None:
    await recovery()
    await _serve(kafka_bus, GOALS.name, FlakyService(failures=0))
    results = EventStream(kafka_bus.settings, topics=[CONTROL.name])
    await results.start()
    wrong = {"type": "GoalSubmitted", "run_id": "run-wrong", "payload": {"goal": 42}}
    await kafka_bus.publish_raw(GOALS.name, json.dumps(wrong).encode(), key=b"run-wrong")
    failed = await _first(results, lambda e: e.run_id == "run-wrong")
    await results.stop()
    assert isinstance(failed.payload, FailRun)
    assert failed.payload.reason is FailureReason.INVALID_GOAL
    assert "schema" in failed.payload.message


async def test_a_poison_message_is_parked_and_an_operator_can_redrive_it(
    kafka_bus: KafkaBus, recovery: StartRecovery, loopline_endpoints: Endpoints
) -> None:
    await recovery()
    await _serve(kafka_bus, CONTEXTS.name, FlakyService(failures=0))
    results = EventStream(kafka_bus.settings, topics=[CONTROL.name])
    await results.start()
    await kafka_bus.publish_raw(
        CONTEXTS.name, b"\x00not json", key=b"run-poison", headers=[("origin", b"test")]
    )
    failed = await _first(results, lambda e: e.run_id == "run-poison")
    await results.stop()
    assert isinstance(failed.payload, FailRun)
    assert failed.payload.reason is FailureReason.POISON
    assert "undecodable" in failed.payload.message

    listed = json.loads(_cli(kafka_bus, loopline_endpoints, "ls", "--run", "run-poison", "--json"))
    assert [(r["category"], r["status"]) for r in listed] == [("poison", "parked")]
    # In a thread: recovery runs in this process's loop, and carries the redrive out.
    redriven = await asyncio.to_thread(
        _cli, kafka_bus, loopline_endpoints, "redrive", "--run", "run-poison"
    )
    assert "1 dead letter(s) redriven" in redriven
    # The same bytes, key and headers went back to agent.contexts and failed again.
    letters = await _rows_eventually(loopline_endpoints, kafka_bus.prefix, "run-poison", 2)
    assert [r["status"] for r in letters] == ["redriven", "parked"]
    assert letters[0]["original_value"] == letters[1]["original_value"] == b"\x00not json"
    assert json.loads(letters[1]["original_headers"]) == json.loads(letters[0]["original_headers"])


async def _rows_eventually(
    endpoints: Endpoints, prefix: str, run_id: str, count: int
) -> list[asyncpg.Record]:
    """The run's ledger rows once there are `count` (PostgreSQL cannot be awaited: polled)."""
    for _ in range(450):
        rows = await _letters(endpoints, prefix, run_id)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"recovery recorded {len(rows)} dead letters of {run_id}, not {count}")


def _cli(bus: KafkaBus, endpoints: Endpoints, *args: str) -> str:
    env = {
        **os.environ,
        "LOOPLINE_KAFKA_BOOTSTRAP": endpoints.kafka.bootstrap,
        "LOOPLINE_KAFKA_TOPIC_PREFIX": bus.prefix,
        "LOOPLINE_POSTGRES_DSN": _dsn(endpoints),
    }
    done = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout
