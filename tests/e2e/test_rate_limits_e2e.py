"""The shared rate limiter end to end: planners as processes, a provider that holds its own
limit with 429s.

- Four planner replicas, 100 runs at once, a provider limit of 60 requests a minute: the
  provider never sees more than 60 in any minute, no call is refused, every run completes,
  and runs waiting far longer than their step timeout are not taken for stalled (slow: about
  two minutes, `make test-limits`).
- Two tenants, one flooding the provider: the other's steps take at most twice as long as
  when it runs alone.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from loopline_bus import seek_to_first
from loopline_events import (
    CONTEXTS,
    GOALS,
    ContextAssembled,
    Envelope,
    GoalSubmitted,
    ModelDecided,
    RunCompleted,
)
from loopline_recovery.domain import REDRIVE_HEADER
from loopline_testing import TEST_AGENTS, System
from loopline_testing.openai_server import (
    OpenAIServer,
    RecordedRequest,
    text_completion,
    tool_call_completion,
)

from loopline.sdk import Loopline

MODEL = "openai:gpt-test"
AGENTS = (
    TEST_AGENTS
    + """
[agents.limited]
system_prompt = "You are a careful assistant."
model = "openai:gpt-test"
tools = ["calculator"]
max_steps = 4
deadline_s = 600
step_timeout_s = 15          # far shorter than the waits: waiting is not stalling

[agents.chatty]
system_prompt = "You answer at once."
model = "openai:gpt-test"
tools = []
max_steps = 2
deadline_s = 600
step_timeout_s = 15
"""
)


def calculate_then_answer(request: RecordedRequest) -> dict[str, Any]:
    """The model: one calculator call when tools are offered, then the answer."""
    messages = request.get("messages", [])
    if request.get("tools") and messages[-1].get("role") != "tool":
        return tool_call_completion([("calculator", {"expression": "6 * 7"})])
    return text_completion("It is 42.", usage={"prompt_tokens": 40, "completion_tokens": 4})


async def submit_all(system: System, goals: list[tuple[str, str, str]]) -> None:
    """Publish goals `(run id, agent, tenant)` at once."""
    async with Loopline(system.kafka, producer="e2e") as client:
        for run_id, agent, tenant in goals:
            goal = GoalSubmitted(goal="What is 6 * 7?", agent=agent)
            await client._bus.publish(
                GOALS.name, Envelope.of(goal, run_id=run_id, tenant=tenant, producer="e2e")
            )


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_four_planners_hold_a_provider_limit_of_60_a_minute_and_every_run_completes(
    start_system: Callable[..., System],
) -> None:
    with OpenAIServer(default=calculate_then_answer, requests_per_minute=60) as server:
        # The provider allows 60 a minute; the limiter is told so, and keeps a 5 % margin for
        # the time between its "go" and the request reaching the provider.
        limits = f'margin = 0.05\n[models."{MODEL}"]\nrequests_per_minute = 60\n'
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        system = start_system(env_extra=env, agents=AGENTS, limits=limits)
        await system.restart("planner", replicas=4)
        run_ids = {f"limited-{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(100)}
        async with system.results() as results:
            started = time.monotonic()
            await submit_all(system, [(r, "chatty", "default") for r in sorted(run_ids)])
            outcomes = await results.wait_for(run_ids, timeout=330)
        took = time.monotonic() - started

    failed = {r: e.payload for r, e in outcomes.items() if not isinstance(e.payload, RunCompleted)}
    assert not failed
    print(
        f"\n100 runs through 4 planners at 60/min: {took:.0f} s; provider saw at most "
        f"{server.most_in_any(60.0)} requests in a minute, refused {server.refused}"
    )
    assert server.calls == 100
    assert server.most_in_any(60.0) <= 60
    assert server.refused == 0
    assert took >= 95  # 100 calls at 60 a minute cannot be faster: the limit held
    # Runs waited up to 100 s with a step timeout of 15 s: announced, none was re-driven.
    assert await redriven(system) == []


async def redriven(system: System) -> list[str]:
    """Run ids of the contexts the watchdog re-published."""
    topic = system.kafka.topic_prefix + CONTEXTS.name
    admin = AIOKafkaAdminClient(**system.kafka.client_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**system.kafka.client_options(), enable_auto_commit=False)
    await consumer.start()
    found: list[str] = []
    read = 0
    try:
        consumer.assign(partitions)
        await seek_to_first(consumer, partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                read += len(records)
                found += [
                    (r.key or b"").decode()
                    for r in records
                    if any(name == REDRIVE_HEADER for name, _ in r.headers or ())
                ]
    finally:
        await consumer.stop()
    assert read >= 100  # every run's context was read
    return found


async def light_step_latencies(system: System, runs: int) -> list[float]:
    """Seconds from each context of the light tenant's runs (one after another) to its
    decision, by the events' own times."""
    latencies: list[float] = []
    async with Loopline(system.kafka, producer="e2e") as client:
        for _ in range(runs):
            run = await client.submit("What is 6 * 7?", agent="limited", tenant="light")
            asked: dict[int, Envelope[Any]] = {}
            async for event in run.steps():
                if isinstance(event.payload, ContextAssembled):
                    asked[event.seq] = event
                elif isinstance(event.payload, ModelDecided):
                    gap = event.occurred_at - asked[event.seq].occurred_at
                    latencies.append(gap.total_seconds())
            assert run.outcome is not None
            assert isinstance(run.outcome.payload, RunCompleted), run.outcome.payload
    return latencies


@pytest.mark.timeout(300)
async def test_a_flooding_tenant_leaves_the_other_its_pace(
    start_system: Callable[..., System],
) -> None:
    # 300 a minute: a call every 0.2 s; the model takes 0.3 s to answer.
    limits = f'[models."{MODEL}"]\nrequests_per_minute = 300\n'
    with OpenAIServer(default=calculate_then_answer, delay_s=0.3) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        system = start_system(env_extra=env, agents=AGENTS, limits=limits)
        alone = await light_step_latencies(system, runs=5)
        flood = {f"flood-{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(200)}
        async with system.results() as results:
            await submit_all(system, [(r, "chatty", "flood") for r in sorted(flood)])
            await asyncio.sleep(3)  # the flood fills the limiter's queue
            flooded = await light_step_latencies(system, runs=5)
            light_done = time.monotonic()
            outcomes = await results.wait_for(flood, timeout=150)
            flood_done = time.monotonic()

    assert all(isinstance(e.payload, RunCompleted) for e in outcomes.values())
    assert flood_done - light_done > 3  # the flood went on the whole time the light tenant ran
    p50_alone, p50_flooded = statistics.median(alone), statistics.median(flooded)
    print(
        f"\nlight tenant's step latency p50: alone {p50_alone * 1000:.0f} ms, "
        f"beside a flood of 200 runs {p50_flooded * 1000:.0f} ms"
    )
    assert p50_flooded <= 2 * p50_alone
