"""The watchdog on the real Kafka and Redis: a stalled step is re-driven with its original
bytes, then the run is failed; progress stops it; its table survives a restart; a call held
for a person's approval is a wait until its time, then denied or its run failed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline_bus import KafkaBus, partition_for
from loopline_events import (
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    ApprovalDecided,
    ApprovalRequested,
    Budget,
    ContextAssembled,
    Envelope,
    FailRun,
    FailureReason,
    GoalSubmitted,
    Message,
    ModelDecided,
    OnTimeout,
    RunCompleted,
    ToolCall,
    decode_event,
)
from loopline_recovery.domain import REDRIVE_HEADER
from loopline_recovery.main import start as start_recovery
from loopline_runtime import Endpoints, Stop, load_signing, schema_name

AGENTS = """
[agents.hasty]
system_prompt = "Be quick."
step_timeout_s = 0.5
deadline_s = 600

[agents.patient]
system_prompt = "Take your time."
step_timeout_s = 600
deadline_s = 600

[agents.careful]
system_prompt = "Ask first."
step_timeout_s = 0.5
deadline_s = 600
"""

StartRecovery = Callable[[], Awaitable[Stop]]


@pytest.fixture
async def recovery(
    kafka_bus: KafkaBus,
    loopline_endpoints: Endpoints,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[StartRecovery]:
    """Starts recovery (with its watchdog) in this process, in the test's namespace."""
    agents = tmp_path / "agents.toml"
    agents.write_text(AGENTS)
    for name, value in {
        "LOOPLINE_KAFKA_BOOTSTRAP": loopline_endpoints.kafka.bootstrap,
        "LOOPLINE_KAFKA_TOPIC_PREFIX": topic_prefix,
        "LOOPLINE_POSTGRES_DSN": loopline_endpoints.postgres.dsn.get_secret_value(),
        "LOOPLINE_REDIS_URL": loopline_endpoints.redis.url.get_secret_value(),
        "LOOPLINE_AGENTS_FILE": str(agents),
        "LOOPLINE_RECOVERY_WATCHDOG_SWEEP_S": "0.1",
    }.items():
        monkeypatch.setenv(name, value)
    running: list[Stop] = []

    async def start() -> Stop:
        stop = await start_recovery()
        running.append(stop)
        return stop

    yield start
    for stop in running:
        await stop()
    conn = await asyncpg.connect(loopline_endpoints.postgres.dsn.get_secret_value())
    try:
        schema = schema_name("recovery", topic_prefix)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    redis = aioredis.from_url(loopline_endpoints.redis.url.get_secret_value())
    try:
        keys = [k async for k in redis.scan_iter(match=f"{topic_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


class Records:
    """Every raw record of some topics of the namespace, from the beginning, as they come."""

    def __init__(self, bus: KafkaBus, topics: list[str]):
        self.bus, self.topics = bus, topics
        self.seen: list[tuple[str, Any]] = []
        # Earliest as the default reset too: a lazy seek_to_beginning races the default one.
        self._consumer = AIOKafkaConsumer(
            **bus.settings.client_options(), auto_offset_reset="earliest"
        )

    async def __aenter__(self) -> Records:
        await self._consumer.start()
        parts = [
            TopicPartition(self.bus.topic(t), p)
            for t in self.topics
            for p in range(self.bus.spec(t).partitions)
        ]
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def until(self, match: Callable[[list[tuple[str, Any]]], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not match(self.seen):
                batch = await self._consumer.getmany(timeout_ms=200)
                for tp, messages in batch.items():
                    logical = tp.topic[len(self.bus.prefix) :]
                    self.seen += [(logical, m) for m in messages]

    def of(self, topic: str, run_id: str) -> list[Any]:
        return [m for t, m in self.seen if t == topic and m.key == run_id.encode()]


def redrives(records: list[Any]) -> list[int]:
    return [
        int(value) for m in records for name, value in (m.headers or ()) if name == REDRIVE_HEADER
    ]


def fail_runs(records: list[Any]) -> list[FailRun]:
    return [p for p in (decode_event(m.value).payload for m in records) if isinstance(p, FailRun)]


async def begin(bus: KafkaBus, run_id: str, agent: str, **budget: Any) -> Envelope[Any]:
    """What memory would have published for a new run: the goal, then the first context."""
    goal = Envelope.of(
        GoalSubmitted(goal="2 + 3?", agent=agent, budget=Budget(**budget)),
        run_id=run_id,
        producer="sdk",
        tenant="acme",
    )
    await bus.publish(GOALS.name, goal)
    context = ContextAssembled(
        agent=agent, model="demo", appended=(Message(role="user", content="2 + 3?"),)
    )
    first = goal.follow(context, producer="memory", seq=1)
    await bus.publish(CONTEXTS.name, first)
    return first


async def test_a_step_nobody_answers_is_re_driven_three_times_then_the_run_fails_stalled(
    kafka_bus: KafkaBus, recovery: StartRecovery
) -> None:
    await recovery()
    started = time.monotonic()
    context = await begin(kafka_bus, "run-stuck", "hasty")
    async with Records(kafka_bus, [CONTEXTS.name, CONTROL.name]) as log:
        await log.until(lambda _: bool(fail_runs(log.of(CONTROL.name, "run-stuck"))), 60)
    elapsed = time.monotonic() - started
    contexts = log.of(CONTEXTS.name, "run-stuck")
    original, copies = contexts[0], contexts[1:]
    assert redrives(copies) == [1, 2, 3]
    for copy in copies:  # the same record: same key, bytes and event id
        assert (copy.key, copy.value) == (original.key, original.value)
        assert decode_event(copy.value).event_id == context.event_id
    (fail,) = fail_runs(log.of(CONTROL.name, "run-stuck"))
    assert (fail.reason, fail.at_step, fail.requested_by) == (
        FailureReason.STALLED,
        1,
        "recovery",
    )
    assert "waiting for the planner's decision, re-driven 3 times" in fail.message
    # 0.5 s, then 1.5 times longer each time: failed about 4 s after the context; never much later.
    assert 3.5 < elapsed < 30, elapsed


async def test_progress_after_a_re_drive_ends_the_watch_and_a_result_forgets_the_run(
    kafka_bus: KafkaBus, recovery: StartRecovery, loopline_endpoints: Endpoints
) -> None:
    await recovery()
    context = await begin(kafka_bus, "run-slow", "hasty")
    async with Records(kafka_bus, [CONTEXTS.name, CONTROL.name]) as log:
        await log.until(lambda _: bool(redrives(log.of(CONTEXTS.name, "run-slow"))), 30)
        decided = context.follow(ModelDecided(model="demo", final_answer="5"), producer="planner")
        await kafka_bus.publish(DECISIONS.name, decided)
        done = decided.follow(RunCompleted(answer="5", steps=1), producer="memory")
        await kafka_bus.publish(RESULTS.name, done)
        redis = aioredis.from_url(loopline_endpoints.redis.url.get_secret_value())
        try:
            await _until_forgotten(redis, kafka_bus.prefix, "run-slow")
        finally:
            await redis.aclose()
        await log.until(lambda _: True, 5)
    assert fail_runs(log.of(CONTROL.name, "run-slow")) == []


async def _until_forgotten(redis: aioredis.Redis, prefix: str, run_id: str) -> None:
    async with asyncio.timeout(30):
        while True:
            keys = [k async for k in redis.scan_iter(match=f"{prefix}loopline:watchdog:*")]
            held = [await redis.hexists(k, run_id) for k in keys]
            if not any(held):  # (a partition's hash goes with its last run)
                return
            await asyncio.sleep(0.1)


@pytest.mark.timeout(300)  # two start-ups and a stop of recovery: slow on a loaded machine
async def test_the_watchdog_s_table_survives_a_restart(
    kafka_bus: KafkaBus, recovery: StartRecovery
) -> None:
    stop = await recovery()
    await begin(kafka_bus, "run-restart", "hasty")
    async with Records(kafka_bus, [CONTEXTS.name, CONTROL.name]) as log:
        await log.until(lambda _: bool(redrives(log.of(CONTEXTS.name, "run-restart"))), 30)
        await stop()
        await recovery()
        await log.until(lambda _: bool(fail_runs(log.of(CONTROL.name, "run-restart"))), 60)
    # The tries went on from where they were: the restarted watchdog read them from Redis.
    assert redrives(log.of(CONTEXTS.name, "run-restart")) == [1, 2, 3]


async def test_a_silent_run_past_its_deadline_is_failed_with_deadline(
    kafka_bus: KafkaBus, recovery: StartRecovery
) -> None:
    await recovery()
    await begin(kafka_bus, "run-late", "patient", deadline_s=1.5)
    async with Records(kafka_bus, [CONTEXTS.name, CONTROL.name]) as log:
        await log.until(lambda _: bool(fail_runs(log.of(CONTROL.name, "run-late"))), 60)
    (fail,) = fail_runs(log.of(CONTROL.name, "run-late"))
    assert (fail.reason, fail.at_step) == (FailureReason.DEADLINE, None)
    assert redrives(log.of(CONTEXTS.name, "run-late")) == []  # its 600 s step timeout


@pytest.mark.timeout(300)  # two start-ups of recovery: slow on a loaded machine
async def test_two_instances_each_sweep_only_their_own_partitions(
    kafka_bus: KafkaBus, recovery: StartRecovery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "loopline.recovery")  # assignments, should it ever fail
    await recovery()
    await recovery()
    partitions = kafka_bus.spec(CONTEXTS.name).partitions
    runs: dict[int, str] = {}
    for n in range(100):  # one run in each partition
        runs.setdefault(partition_for(f"run-{n}".encode(), partitions), f"run-{n}")
    assert len(runs) == partitions
    for run_id in runs.values():
        await begin(kafka_bus, run_id, "hasty")
    async with Records(kafka_bus, [CONTEXTS.name, CONTROL.name]) as log:
        await log.until(
            lambda _: all(fail_runs(log.of(CONTROL.name, r)) for r in runs.values()), 90
        )
    for run_id in runs.values():  # re-driven three times, not three times per instance
        assert redrives(log.of(CONTEXTS.name, run_id)) == [1, 2, 3], run_id


HOLD_S = 3.0
"""How long a person may decide on a held call: six step timeouts of the `careful` agent, so
a watchdog that took the wait for a stall would have re-driven and failed the run by then."""


async def hold(kafka_bus: KafkaBus, run_id: str, on_timeout: OnTimeout) -> datetime:
    """A run whose step 1 holds call `pay` for a person, as the executor would; when its wait
    ends."""
    context = await begin(kafka_bus, run_id, "careful")
    pay = ToolCall(call_id="pay", tool="transfer", arguments={"amount": 900})
    decided = context.follow(ModelDecided(model="demo", tool_calls=(pay,)), producer="planner")
    await kafka_bus.publish(DECISIONS.name, decided)
    until = datetime.now(UTC) + timedelta(seconds=HOLD_S)
    request = ApprovalRequested(
        call_id="pay",
        tool="transfer",
        arguments=pay.arguments,
        effect="side_effect",
        until=until,
        on_timeout=on_timeout,
    )
    await kafka_bus.publish(OBSERVATIONS.name, decided.follow(request, producer="tool-executor"))
    return until


def denials(records: list[Any]) -> list[Any]:
    return [m for m in records if isinstance(decode_event(m.value).payload, ApprovalDecided)]


def written_at(record: Any) -> datetime:
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


async def test_a_held_call_no_one_decides_on_is_denied_at_its_time_not_failed_as_stalled(
    kafka_bus: KafkaBus, recovery: StartRecovery
) -> None:
    await recovery()
    until = await hold(kafka_bus, "run-held", "deny")
    async with Records(kafka_bus, [DECISIONS.name, CONTROL.name]) as log:
        # Nothing memory would do follows (no memory runs): the watchdog repeats its denial.
        await log.until(lambda _: len(denials(log.of(CONTROL.name, "run-held"))) >= 2, 60)
    first, repeated = denials(log.of(CONTROL.name, "run-held"))[:2]
    assert written_at(first) >= until - timedelta(milliseconds=5)  # (the broker's clock)
    earlier = [m for m in log.of(CONTROL.name, "run-held") if written_at(m) < until]
    assert fail_runs(earlier) == []  # not failed as stalled while a person could decide
    assert redrives(log.of(DECISIONS.name, "run-held")) == []
    event = decode_event(first.value)
    denial = event.payload
    assert isinstance(denial, ApprovalDecided)
    assert (denial.call_id, denial.approved, denial.decided_by) == ("pay", False, "recovery")
    assert denial.reason.startswith("no one decided within")
    assert (event.run_id, event.seq, event.tenant, event.producer) == (
        "run-held",
        1,
        "acme",
        "recovery",
    )
    assert first.key == b"run-held"
    key = load_signing().signing_key()  # signed as recovery signs its FailRun commands
    assert event.signature == (key.sign(event).signature if key is not None else None)
    # Asked again, a step timeout later, with the same command: memory takes it once.
    assert decode_event(repeated.value).event_id == event.event_id
    assert written_at(repeated) > written_at(first)


async def test_a_held_call_whose_policy_fails_the_run_fails_it_with_approval_timeout(
    kafka_bus: KafkaBus, recovery: StartRecovery
) -> None:
    await recovery()
    until = await hold(kafka_bus, "run-held-fail", "fail")
    async with Records(kafka_bus, [DECISIONS.name, CONTROL.name]) as log:
        await log.until(lambda _: bool(fail_runs(log.of(CONTROL.name, "run-held-fail"))), 60)
    (command,) = log.of(CONTROL.name, "run-held-fail")
    assert written_at(command) >= until - timedelta(milliseconds=5)
    (fail,) = fail_runs([command])
    assert (fail.reason, fail.at_step, fail.requested_by) == (
        FailureReason.APPROVAL_TIMEOUT,
        1,
        "recovery",
    )
    assert "no one decided on held call(s) pay of step 1" in fail.message
    assert redrives(log.of(DECISIONS.name, "run-held-fail")) == []
    assert denials(log.of(CONTROL.name, "run-held-fail")) == []
