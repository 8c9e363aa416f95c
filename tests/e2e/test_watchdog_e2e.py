"""The watchdog with the four services running: a lost step is re-driven and the run completes;
a step that never comes back ends the run `stalled`; a run recovery fails ends in memory too;
and re-driving a finished run's steps changes nothing and pays for nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from loopline_bus import partition_for, seek_to_first
from loopline_events import (
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    FailRun,
    FailureReason,
    RunCompleted,
    RunFailed,
    decode_event,
)
from loopline_memory.domain import RunState, RunStatus
from loopline_recovery.domain import REDRIVE_HEADER
from loopline_runtime import KafkaSettings, schema_name
from loopline_testing import TEST_AGENTS, System
from loopline_testing.openai_server import OpenAIServer
from prometheus_client.parser import text_string_to_metric_families

from loopline.sdk import Loopline

AGENTS = (
    TEST_AGENTS
    + """
[agents.hasty]
system_prompt = "Arithmetic only."
model = "demo"
tools = ["calculator"]
max_steps = 10
deadline_s = 240
step_timeout_s = 2

[agents.steady]
system_prompt = "Arithmetic only."
model = "demo"
tools = ["calculator"]
max_steps = 10
deadline_s = 240
step_timeout_s = 4
"""
)
"""`hasty` stalls quickly; `steady` leaves a restarted planner half a minute to answer a
re-drive before its run would fail."""
STALLED_WITHIN_S = 60.0
"""Waits of 2 s, 3, 4.5 and 6.75: the run fails about 16 s after its last step. The bound is
loose for a loaded two-core machine, yet far below the run's 240 s deadline."""


@pytest.fixture
def start_watched(
    start_system: Callable[..., System], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., System]:
    """Starts the services with the `hasty` profile and a quick sweep."""
    agents = tmp_path / "agents.toml"
    agents.write_text(AGENTS)
    monkeypatch.setenv("LOOPLINE_AGENTS_FILE", str(agents))  # replays here fold alike

    def start(**env: str) -> System:
        return start_system(
            env_extra={
                "LOOPLINE_AGENTS_FILE": str(agents),
                "LOOPLINE_RECOVERY_WATCHDOG_SWEEP_S": "0.2",
                **env,
            }
        )

    return start


async def stop_service(system: System, instance: str) -> None:
    """SIGTERM one instance and wait until it is gone: it leaves its group at once."""
    (pid,) = [s.pid for s in system.services.status() if s.name == instance and s.pid]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(s.name == instance and s.pid for s in system.services.status()):
        assert time.monotonic() < deadline, f"{instance} still runs 30 s after SIGTERM"
        await asyncio.sleep(0.05)


async def metric(system: System, instance: str, name: str, **labels: str) -> float:
    """A sample of the instance's /metrics (0 when absent)."""
    (url,) = [s.url for s in system.services.status() if s.name == instance]
    assert url is not None, f"{instance} serves no /metrics"
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def records_of(kafka: KafkaSettings, topic: str, run_id: str) -> list[Any]:
    """Every record of the run in `topic`, as the log holds it now."""
    physical = kafka.topic_prefix + topic
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([physical])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(**kafka.client_options())
    await consumer.start()
    try:
        count = len(described["partitions"])
        tp = TopicPartition(physical, partition_for(run_id.encode(), count))
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await seek_to_first(consumer, [tp])
        out: list[Any] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            out += [m for m in batch.get(tp, []) if m.key == run_id.encode()]
        return out
    finally:
        await consumer.stop()


def redriven(records: list[Any]) -> list[Any]:
    return [m for m in records if any(k == REDRIVE_HEADER for k, _ in m.headers or ())]


async def first_context(kafka: KafkaSettings, run_id: str) -> Any:
    async with asyncio.timeout(60):
        while True:
            contexts = await records_of(kafka, CONTEXTS.name, run_id)
            if contexts:
                return contexts[0]
            await asyncio.sleep(0.1)


async def skip_for_group(kafka: KafkaSettings, group: str, record: Any) -> None:
    """Commit `group` past `record`: the record is lost to it, as after an offset reset."""
    tp = TopicPartition(record.topic, record.partition)
    consumer = AIOKafkaConsumer(
        **kafka.client_options(),
        group_id=kafka.topic_prefix + group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        deadline = time.monotonic() + 30
        while True:
            try:
                await consumer.commit({tp: record.offset + 1})
                return
            except KafkaError:  # the group is still settling after its member left
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


async def memory_state(system: System, run_id: str) -> tuple[str, str]:
    """Memory's state of the run from Redis and from PostgreSQL, serialised alike."""
    hot, durable = await system.memory_states(run_id)
    assert hot is not None
    assert durable is not None
    return hot.model_dump_json(), durable.model_dump_json()


async def assert_memory_agrees_with_replay(
    client: Loopline, system: System, run_id: str
) -> RunState:
    replayed = await client.replay(run_id)
    assert replayed.state is not None
    hot, durable = await memory_state(system, run_id)
    assert replayed.state.model_dump_json() == hot == durable
    return replayed.state


async def test_a_lost_step_is_re_driven_and_the_run_completes(
    start_watched: Callable[..., System],
) -> None:
    system = start_watched()
    await stop_service(system, "planner")
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 2 + 3?", agent="steady")
        lost = await first_context(system.kafka, run.run_id)
        # The planner will never see this context: only the watchdog can bring it back.
        await skip_for_group(system.kafka, "planner", lost)
        await system.restart("planner")
        outcome = (await run.result(timeout=120)).payload
        assert isinstance(outcome, RunCompleted), outcome
        assert "5" in outcome.answer
        contexts = await records_of(system.kafka, CONTEXTS.name, run.run_id)
        copies = [m for m in redriven(contexts) if m.value == lost.value]
        assert copies, "the lost context was not re-driven"
        decisions = [
            decode_event(m.value)
            for m in await records_of(system.kafka, DECISIONS.name, run.run_id)
        ]
        # However often a step was re-driven, it was decided once: one event per step.
        by_step: dict[int, set[str]] = {}
        for d in decisions:
            by_step.setdefault(d.seq, set()).add(str(d.event_id))
        assert all(len(ids) == 1 for ids in by_step.values()), by_step
        state = await assert_memory_agrees_with_replay(client, system, run.run_id)
    assert state.status is RunStatus.COMPLETED
    redrives = await metric(system, "recovery", "loopline_stalled_runs_total", action="redriven")
    assert redrives >= 1
    assert await metric(system, "recovery", "loopline_stalled_runs_total", action="failed") == 0
    cost = await metric(system, "memory", "loopline_model_cost_usd_total", model="demo")
    assert cost == pytest.approx(
        state.usage.prompt_tokens * 1e-6 + state.usage.completion_tokens * 2e-6
    )


async def test_a_step_that_never_comes_back_ends_the_run_stalled_within_the_bound(
    start_watched: Callable[..., System],
) -> None:
    system = start_watched()
    await stop_service(system, "planner")
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 2 + 3?", agent="hasty")
        started = time.monotonic()
        result = await run.result(timeout=STALLED_WITHIN_S + 30)
        elapsed = time.monotonic() - started
        outcome = result.payload
        assert isinstance(outcome, RunFailed), outcome
        assert outcome.reason is FailureReason.STALLED
        assert "waiting for the planner's decision, re-driven 3 times" in outcome.message
        assert result.producer == "memory"  # the one writer of a run's end
        assert elapsed < STALLED_WITHIN_S, elapsed
        contexts = await records_of(system.kafka, CONTEXTS.name, run.run_id)
        assert len(redriven(contexts)) == 3
        commands = [
            decode_event(m.value).payload
            for m in await records_of(system.kafka, CONTROL.name, run.run_id)
        ]
        assert [(c.reason, c.requested_by) for c in commands if isinstance(c, FailRun)][:1] == [
            (FailureReason.STALLED, "recovery")
        ]
        state = await assert_memory_agrees_with_replay(client, system, run.run_id)
    assert (state.status, state.failure) == (RunStatus.FAILED, FailureReason.STALLED)
    stalled = "loopline_stalled_runs_total"
    # Every re-drive counted once: the context's three, and the goal's if memory was slow to
    # answer it (a loaded machine) and the watchdog re-drove it first.
    goals = redriven(await records_of(system.kafka, GOALS.name, run.run_id))
    assert await metric(system, "recovery", stalled, action="redriven") == 3 + len(goals)
    assert await metric(system, "recovery", stalled, action="failed") == 1
    assert await metric(system, "recovery", "loopline_active_runs") == 0  # it ended


async def test_a_run_recovery_fails_is_ended_in_memory_s_state_too(
    start_watched: Callable[..., System],
) -> None:
    system = start_watched()
    await stop_service(system, "planner")  # the run waits at step 1, well within its timeout
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 2 + 3?", tenant="acme")
        await first_context(system.kafka, run.run_id)
        poison = b"\x00 not an event"
        await client._bus.publish_raw(DECISIONS.name, poison, key=run.run_id.encode())
        result = await run.result(timeout=90)
        outcome = result.payload
        assert isinstance(outcome, RunFailed), outcome
        assert (result.producer, result.tenant) == ("memory", "acme")
        assert outcome.reason is FailureReason.POISON
        assert "loopline dlq show" in outcome.message
        state = await assert_memory_agrees_with_replay(client, system, run.run_id)
    assert (state.status, state.failure) == (RunStatus.FAILED, FailureReason.POISON)
    assert state.step == 1  # the partial work is kept
    results = await records_of(system.kafka, RESULTS.name, run.run_id)
    assert len({decode_event(m.value).event_id for m in results}) == 1  # one end, one writer


async def test_re_driving_every_step_of_a_finished_run_changes_nothing_and_costs_nothing(
    start_watched: Callable[..., System],
) -> None:
    with OpenAIServer() as server:
        server.reply_tool_calls([("calculator", {"expression": "6 * 7"})])
        server.reply_text("It is 42.")
        system = start_watched(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="sk-test")
        async with Loopline(system.kafka, producer="e2e") as client:
            run = await client.submit("What is 6 * 7?", agent="openai")
            outcome = (await run.result(timeout=90)).payload
            assert isinstance(outcome, RunCompleted)
            await settled(system)
            before = await snapshot(system, run.run_id)
            calls = server.calls
            # What the watchdog would do, to every step at once: re-publish the goal, each
            # context and each decision, as they are in the log.
            driving = [
                (topic, m)
                for topic in (GOALS.name, CONTEXTS.name, DECISIONS.name)
                for m in await records_of(system.kafka, topic, run.run_id)
            ]
            assert len(driving) == 5  # goal, two contexts, two decisions
            for topic, m in driving:
                headers = [*(m.headers or ()), (REDRIVE_HEADER, b"1")]
                await client._bus.publish_raw(topic, m.value, key=m.key, headers=headers)
            await settled(system)
            after = await snapshot(system, run.run_id)
            state = await assert_memory_agrees_with_replay(client, system, run.run_id)
        assert server.calls == calls == 2  # the planner answered from its cache
    assert after == before  # no new event, no state change, no second tool call
    assert state.status is RunStatus.COMPLETED


async def snapshot(system: System, run_id: str) -> dict[str, Any]:
    """Distinct event ids per topic, memory's state, and the executor's ledger for the run."""
    ids = {
        topic: sorted(
            {
                str(decode_event(m.value).event_id)
                for m in await records_of(system.kafka, topic, run_id)
            }
        )
        for topic in (CONTEXTS.name, DECISIONS.name, OBSERVATIONS.name, RESULTS.name)
    }
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        executor = schema_name("executor", system.kafka.topic_prefix)
        ledger = [
            tuple(r)
            for r in await conn.fetch(
                f'SELECT call_id, tool, started_at, finished_at FROM "{executor}".tool_calls '
                "WHERE run_id = $1 ORDER BY call_id",
                run_id,
            )
        ]
    finally:
        await conn.close()
    return {"ids": ids, "state": await memory_state(system, run_id), "ledger": ledger}


async def settled(system: System, timeout: float = 60.0) -> None:
    """Wait until memory, the planner and the executor have read every record of their topics."""
    groups = {
        "memory": (GOALS.name, CONTROL.name, DECISIONS.name, OBSERVATIONS.name),
        "planner": (CONTEXTS.name,),
        "tool-executor": (DECISIONS.name,),
    }
    prefix = system.kafka.topic_prefix
    admin = AIOKafkaAdminClient(**system.kafka.client_options())
    probe = AIOKafkaConsumer(**system.kafka.client_options())
    await admin.start()
    await probe.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                behind = 0
                for group, topics in groups.items():
                    committed = await admin.list_consumer_group_offsets(prefix + group)
                    parts = [tp for tp in committed if tp.topic[len(prefix) :] in topics]
                    ends = await probe.end_offsets(parts)
                    behind += sum(ends[tp] - committed[tp].offset for tp in parts)
                if behind == 0:
                    return
                await asyncio.sleep(0.2)
    finally:
        await probe.stop()
        await admin.close()
