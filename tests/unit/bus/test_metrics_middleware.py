"""MetricsMiddleware on the in-memory bus: exact counts after known events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from loopline_bus import BusMetrics, InMemoryBus, MetricsMiddleware, Outbound, SubscriptionOptions
from loopline_events import (
    CONTEXTS,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    Backoff,
    ContextAssembled,
    Envelope,
    FailureReason,
    GoalSubmitted,
    Message,
    ModelDecided,
    ModelFailed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    TokenUsage,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
    TransientError,
    encode_event,
)
from prometheus_client import CollectorRegistry

TIMEOUT = 10.0


async def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Return once `condition()` holds; fail the test after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the bus's offsets signal nothing
            await asyncio.sleep(0.005)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    return registry.get_sample_value(name, labels) or 0.0


def goal(run_id: str, agent: str = "default") -> Envelope[GoalSubmitted]:
    return Envelope.of(GoalSubmitted(goal="add 2 and 3", agent=agent), run_id=run_id, producer="t")


def context(cause: Envelope[Any], agent: str = "default") -> Envelope[ContextAssembled]:
    payload = ContextAssembled(
        agent=agent, model="demo", appended=(Message(role="user", content="add 2 and 3"),)
    )
    return cause.follow(payload, producer="memory", seq=1)


def decision(
    cause: Envelope[Any], *tools: str, answer: str | None = None
) -> Envelope[ModelDecided]:
    calls = tuple(ToolCall(call_id=f"c{i}", tool=t) for i, t in enumerate(tools))
    payload = ModelDecided(
        model="demo",
        tool_calls=calls,
        final_answer=answer,
        usage=TokenUsage(prompt_tokens=120, completion_tokens=30),
        latency_ms=250.0,
    )
    return cause.follow(payload, producer="planner")


class RetryableError(TransientError):
    pass


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def bus(registry: CollectorRegistry) -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus(middleware=(MetricsMiddleware(BusMetrics(registry)),))
    await bus.start()
    yield bus
    await bus.stop()


def committed(bus: InMemoryBus, group: str, topic: str) -> int:
    return sum(v for (g, t, _), v in bus._committed.items() if (g, t) == (group, topic))


async def handle_all(
    bus: InMemoryBus, group: str, topic: str, handler: Any, count: int, **options: Any
) -> None:
    """Subscribe `handler` and wait until `count` records of `topic` were handled."""
    sub = bus.subscribe(group, [topic], handler, SubscriptionOptions(**options))
    await sub.start()
    await wait_until(lambda: committed(bus, group, topic) >= count)


async def test_consumed_produced_and_timed_per_topic_and_type(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    async def memory(event: Envelope[Any]) -> Sequence[Outbound]:
        return [Outbound(CONTEXTS.name, context(event))]

    for run in ("run-a", "run-b", "run-a-again"):
        await bus.publish(GOALS.name, goal(run))
    await handle_all(bus, "memory", GOALS.name, memory, 3)

    consumed = {"topic": "agent.goals", "type": "GoalSubmitted"}
    assert sample(registry, "loopline_events_consumed_total", **consumed) == 3
    assert sample(registry, "loopline_events_produced_total", **consumed) == 3
    produced = {"topic": "agent.contexts", "type": "ContextAssembled"}
    assert sample(registry, "loopline_events_produced_total", **produced) == 3
    assert sample(registry, "loopline_handler_duration_seconds_count", **consumed) == 3
    assert sample(registry, "loopline_runs_started_total", agent="default") == 3


async def test_a_goal_nobody_answers_starts_no_run(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    async def watcher(event: Envelope[Any]) -> Sequence[Outbound]:
        return ()

    await bus.publish(GOALS.name, goal("run-1"))
    await handle_all(bus, "watchdog", GOALS.name, watcher, 1)

    assert (
        sample(
            registry, "loopline_events_consumed_total", topic="agent.goals", type="GoalSubmitted"
        )
        == 1
    )
    assert registry.get_sample_value("loopline_runs_started_total", {"agent": "default"}) is None


async def test_a_refused_goal_is_counted_under_agent_unknown(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    async def memory(event: Envelope[Any]) -> Sequence[Outbound]:
        failed = RunFailed(reason=FailureReason.INVALID_GOAL, message="unknown agent profile")
        return [Outbound(RESULTS.name, event.follow(failed, producer="memory"))]

    await bus.publish(GOALS.name, goal("run-1", agent="made-up-agent-7f3a"))
    await handle_all(bus, "memory", GOALS.name, memory, 1)

    assert sample(registry, "loopline_runs_started_total", agent="unknown") == 1
    finished = {"outcome": "failed", "reason": "invalid_goal"}
    assert sample(registry, "loopline_runs_finished_total", **finished) == 1


async def test_dead_letters_by_kind_and_retries_in_place(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    tries: dict[str, int] = {}

    async def flaky(event: Envelope[Any]) -> Sequence[Outbound]:
        tries[event.run_id] = tries.get(event.run_id, 0) + 1
        if event.run_id == "transient":
            raise RetryableError("the database is restarting")
        if event.run_id == "recovers" and tries[event.run_id] == 1:
            raise RetryableError("one hiccup")
        if event.run_id == "broken":
            raise ValueError("a bug")
        return ()

    await bus.publish_raw(GOALS.name, b"{not json", key=b"garbage")
    unknown = encode_event(goal("unknown-type")).replace(b"GoalSubmitted", b"GoalInvented")
    await bus.publish_raw(GOALS.name, unknown, key=b"unknown-type")
    for run in ("transient", "recovers", "broken", "fine"):
        await bus.publish(GOALS.name, goal(run))
    await handle_all(
        bus, "memory", GOALS.name, flaky, 6, max_attempts=3, backoff=Backoff(base_s=0.001)
    )

    def dead(kind: str) -> float:
        return sample(
            registry, "loopline_events_dead_lettered_total", topic="agent.goals", kind=kind
        )

    assert (dead("undecodable"), dead("unknown_type"), dead("transient"), dead("handler")) == (
        1,
        1,
        1,
        1,
    )
    retries = {"topic": "agent.goals", "type": "GoalSubmitted"}
    assert sample(registry, "loopline_handler_retries_total", **retries) == 2 + 1
    # Unreadable records are consumed too, under type "unknown": bad input is not a label.
    assert (
        sample(registry, "loopline_events_consumed_total", topic="agent.goals", type="unknown") == 2
    )
    assert sample(registry, "loopline_events_consumed_total", **retries) == 4
    dlq = {"topic": "agent.goals.dlq", "type": "DeadLettered"}
    assert sample(registry, "loopline_events_produced_total", **dlq) == 4
    # Each try is timed: transient 3, recovers 2, broken 1, fine 1.
    assert sample(registry, "loopline_handler_duration_seconds_count", **retries) == 7


async def test_model_tool_and_run_metrics_come_from_the_events_produced(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    async def planner(event: Envelope[Any]) -> Sequence[Outbound]:
        if event.run_id == "model-down":
            failed = ModelFailed(model="demo", error="503 from the provider", attempts=3)
            return [Outbound(DECISIONS.name, event.follow(failed, producer="planner"))]
        return [Outbound(DECISIONS.name, decision(event, "calculator", "invented_tool"))]

    async def executor(event: Envelope[Any]) -> Sequence[Outbound]:
        decided: ModelDecided = event.payload
        ok = ToolCallSucceeded(call_id="c0", tool="calculator", output="5", duration_ms=40.0)
        error = ToolError(kind=ToolErrorKind.UNKNOWN_TOOL, message="there is no such tool")
        missing = ToolCallFailed(call_id="c1", tool=decided.tool_calls[1].tool, error=error)
        return [
            Outbound(OBSERVATIONS.name, event.follow(ok, producer="executor", index=0)),
            Outbound(OBSERVATIONS.name, event.follow(missing, producer="executor", index=1)),
        ]

    async def memory(event: Envelope[Any]) -> Sequence[Outbound]:
        ends = {
            "done": RunCompleted(answer="5", steps=3),
            "over-budget": RunFailed(reason=FailureReason.BUDGET_EXHAUSTED, steps=8),
            "looping": RunFailed(reason=FailureReason.NO_PROGRESS, steps=5),
            "cancelled": RunCancelled(steps=2),
        }
        return [Outbound(RESULTS.name, event.follow(ends[event.run_id], producer="memory"))]

    # The planner answers a context that is two seconds old: its step took >= 2 s.
    for run in ("model-down", "run-1"):
        old = context(goal(run)).model_copy(
            update={"occurred_at": context(goal(run)).occurred_at - timedelta(seconds=2)}
        )
        await bus.publish(CONTEXTS.name, old)
    await handle_all(bus, "planner", CONTEXTS.name, planner, 2)
    await handle_all(bus, "executor", DECISIONS.name, executor, 2)
    for run in ("done", "over-budget", "looping", "cancelled"):
        await bus.publish(OBSERVATIONS.name, decision(goal(run), "calculator"))
    await handle_all(bus, "memory", OBSERVATIONS.name, memory, 4)

    assert sample(registry, "loopline_model_latency_seconds_count", model="demo") == 1
    assert sample(registry, "loopline_model_latency_seconds_sum", model="demo") == 0.25
    assert sample(registry, "loopline_model_tokens_total", model="demo", kind="prompt") == 120
    assert sample(registry, "loopline_model_tokens_total", model="demo", kind="completion") == 30
    assert sample(registry, "loopline_model_failures_total", model="demo") == 1
    assert sample(registry, "loopline_step_duration_seconds_count", kind="decision") == 2
    assert sample(registry, "loopline_step_duration_seconds_sum", kind="decision") >= 4.0
    # The executor answered a ModelDecided (the one planned for run-1); ModelFailed asks nothing.
    assert sample(registry, "loopline_step_duration_seconds_count", kind="observation") == 2

    assert (
        sample(registry, "loopline_tool_calls_total", tool="calculator", outcome="succeeded") == 1
    )
    assert sample(registry, "loopline_tool_duration_seconds_sum", tool="calculator") == 0.04
    # A tool no registry knows is labelled "unknown": a model can invent names without end.
    assert sample(registry, "loopline_tool_calls_total", tool="unknown", outcome="failed") == 1
    assert (
        sample(registry, "loopline_tool_failures_total", tool="unknown", kind="unknown_tool") == 1
    )
    assert (
        registry.get_sample_value(
            "loopline_tool_calls_total", {"tool": "invented_tool", "outcome": "failed"}
        )
        is None
    )

    def finished(outcome: str, reason: str = "") -> float:
        return sample(registry, "loopline_runs_finished_total", outcome=outcome, reason=reason)

    assert finished("completed") == 1
    assert finished("failed", "budget_exhausted") == 1
    assert finished("failed", "no_progress") == 1
    assert finished("cancelled") == 1
    assert sample(registry, "loopline_run_steps_count") == 4
    assert sample(registry, "loopline_run_steps_sum") == 3 + 8 + 5 + 2


async def test_events_published_directly_are_not_steps(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    """A re-published result (a re-drive, a retry) is counted as produced, not as a new end."""
    await bus.publish(
        RESULTS.name, goal("run-1").follow(RunCompleted(answer="5", steps=1), producer="x")
    )

    produced = {"topic": "agent.results", "type": "RunCompleted"}
    assert sample(registry, "loopline_events_produced_total", **produced) == 1
    assert (
        registry.get_sample_value(
            "loopline_runs_finished_total", {"outcome": "completed", "reason": ""}
        )
        is None
    )


async def test_raw_publications_are_labelled_by_their_type_header(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    value = encode_event(goal("run-1"))
    await bus.publish_raw(
        GOALS.name, value, key=b"run-1", headers=[("event-type", b"GoalSubmitted")]
    )
    await bus.publish_raw(GOALS.name, value, key=b"run-1", headers=[("event-type", b"<script>")])

    assert (
        sample(
            registry, "loopline_events_produced_total", topic="agent.goals", type="GoalSubmitted"
        )
        == 1
    )
    assert (
        sample(registry, "loopline_events_produced_total", topic="agent.goals", type="unknown") == 1
    )


async def test_consumer_lag_per_partition_falls_to_zero_and_goes_with_the_consumer(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    seen_lag: list[float] = []

    async def handler(event: Envelope[Any]) -> Sequence[Outbound]:
        if event.seq == 2:  # the first record of the second batch
            seen_lag.append(sample(registry, "loopline_consumer_lag_messages", **labels))
        return ()

    for seq in range(10):
        await bus.publish(GOALS.name, goal("run-1").model_copy(update={"seq": seq}))
    partition = bus.records(GOALS.name)[0].partition
    labels = {"group": "memory", "topic": "agent.goals", "partition": str(partition)}
    sub = bus.subscribe("memory", [GOALS.name], handler, SubscriptionOptions(max_batch=2))
    await sub.start()
    await wait_until(lambda: committed(bus, "memory", GOALS.name) == 10)

    assert seen_lag == [8]  # after the first batch of two, eight were left
    assert sample(registry, "loopline_consumer_lag_messages", **labels) == 0
    other = {**labels, "partition": str((partition + 1) % GOALS.partitions)}
    assert registry.get_sample_value("loopline_consumer_lag_messages", other) == 0

    await sub.stop()
    assert registry.get_sample_value("loopline_consumer_lag_messages", labels) is None


async def test_no_label_is_ever_a_run_id(bus: InMemoryBus, registry: CollectorRegistry) -> None:
    runs = [f"run-{i:04d}-3f9c" for i in range(20)]

    async def memory(event: Envelope[Any]) -> Sequence[Outbound]:
        if event.run_id.endswith("0-3f9c"):
            raise ValueError(f"cannot handle {event.run_id}")
        end = RunCompleted(answer="done", steps=1)
        return [
            Outbound(CONTEXTS.name, context(event)),
            Outbound(RESULTS.name, event.follow(end, producer="memory", index=1)),
        ]

    for run in runs:
        await bus.publish(GOALS.name, goal(run))
    await bus.publish_raw(GOALS.name, b"\xff not an event", key=runs[0].encode())
    await handle_all(bus, "memory", GOALS.name, memory, len(runs) + 1)

    values = {
        value
        for metric in registry.collect()
        for s in metric.samples
        for value in s.labels.values()
    }
    assert sample(registry, "loopline_runs_started_total", agent="default") == 18
    assert values, "the middleware recorded nothing"
    assert not {v for v in values if any(run in v for run in runs)}


async def test_children_are_looked_up_once(registry: CollectorRegistry) -> None:
    metrics = BusMetrics(registry)
    assert metrics.consumed("agent.goals", "GoalSubmitted") is metrics.consumed(
        "agent.goals", "GoalSubmitted"
    )


async def test_a_bus_without_middleware_still_delivers() -> None:
    bus = InMemoryBus(middleware=())
    await bus.start()
    got: list[str] = []

    async def handler(event: Envelope[Any]) -> Sequence[Outbound]:
        got.append(event.run_id)
        return ()

    try:
        await bus.publish(GOALS.name, goal("run-1"))
        await handle_all(bus, "memory", GOALS.name, handler, 1)
    finally:
        await bus.stop()
    assert got == ["run-1"]
