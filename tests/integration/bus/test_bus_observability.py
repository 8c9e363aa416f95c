"""The bus middleware on the real Kafka: consumer lag from the consumer's own positions, and a
run's trace carried from hop to hop in Kafka headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from loopline_bus import (
    BusMetrics,
    KafkaBus,
    MetricsMiddleware,
    Middleware,
    Outbound,
    SubscriptionOptions,
    TracingMiddleware,
    partition_for,
    start_trace,
    trace_from_headers,
)
from loopline_events import (
    CONTEXTS,
    GOALS,
    ContextAssembled,
    Envelope,
    GoalSubmitted,
    Message,
    TraceContext,
    decode_event,
    encode_event,
)
from loopline_runtime import KafkaSettings
from loopline_testing import small_topics
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration
TIMEOUT = 60.0


def goal(run_id: str, seq: int = 0, trace: TraceContext | None = None) -> Envelope[GoalSubmitted]:
    return Envelope.of(
        GoalSubmitted(goal="add 2 and 3"), run_id=run_id, producer="test", seq=seq, trace=trace
    )


async def answer_with_context(event: Envelope[Any]) -> Sequence[Outbound]:
    """Like memory: a context built without follow(), so it has no trace of its own."""
    payload = ContextAssembled(
        agent="default", model="demo", appended=(Message(role="user", content="2+3"),)
    )
    context = Envelope.of(payload, run_id=event.run_id, producer="memory", seq=1)
    return [Outbound(CONTEXTS.name, context)]


@pytest.fixture
async def own_bus(kafka_bus: KafkaBus, kafka_settings: KafkaSettings) -> AsyncIterator[Any]:
    """Builds more buses on the test's namespace (its topics made by `kafka_bus`)."""
    made: list[KafkaBus] = []

    async def make(*middleware: Middleware) -> KafkaBus:
        bus = KafkaBus(
            settings=kafka_settings, specs=small_topics(), client_id="test", middleware=middleware
        )
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.stop()


async def test_lag_per_partition_is_reported_and_falls_to_zero(
    kafka_bus: KafkaBus, own_bus: Any
) -> None:
    registry = CollectorRegistry()
    consumer_bus = await own_bus(MetricsMiddleware(BusMetrics(registry)))
    for seq in range(60):  # one run: one partition
        await kafka_bus.publish(GOALS.name, goal("run-lag", seq))
    partition = partition_for(b"run-lag", small_topics()[0].partitions)
    seen: list[float] = []
    handled = 0

    def lag() -> float | None:
        labels = {"group": "lagging", "topic": GOALS.name, "partition": str(partition)}
        return registry.get_sample_value("loopline_consumer_lag_messages", labels)

    async def slow(event: Envelope[Any]) -> Sequence[Outbound]:
        nonlocal handled
        handled += 1
        value = lag()
        if value is not None:
            seen.append(value)
        return ()

    sub = consumer_bus.subscribe("lagging", [GOALS.name], slow, SubscriptionOptions(max_batch=10))
    await sub.start()
    async with asyncio.timeout(TIMEOUT):
        while handled < 60 or lag() != 0:  # noqa: ASYNC110 - the gauge signals nothing
            await asyncio.sleep(0.05)

    assert seen, "no lag was reported while the backlog was consumed"
    assert max(seen) > 0
    assert max(seen) <= 50  # reported after the first batch of ten at the earliest
    consumed = {"topic": GOALS.name, "type": "GoalSubmitted"}
    assert registry.get_sample_value("loopline_events_consumed_total", consumed) == 60
    await sub.stop()
    assert lag() is None  # a stopped consumer owns no partition: its series is gone


async def read_records(settings: KafkaSettings, topic: str, count: int) -> list[Any]:
    """The first `count` records of a topic of the namespace, headers and all."""
    consumer = AIOKafkaConsumer(
        f"{settings.topic_prefix}{topic}",
        **settings.client_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=200)
                records += [m for messages in batch.values() for m in messages]
    finally:
        await consumer.stop()
    return records


async def test_without_an_sdk_the_trace_rides_the_headers_unchanged(
    kafka_bus: KafkaBus, kafka_settings: KafkaSettings, own_bus: Any
) -> None:
    memory_bus = await own_bus(TracingMiddleware())
    await memory_bus.subscribe("memory", [GOALS.name], answer_with_context).start()
    started = start_trace()
    await kafka_bus.publish(GOALS.name, goal("run-1", trace=started))

    [sent] = await read_records(kafka_settings, GOALS.name, 1)
    [context] = await read_records(kafka_settings, CONTEXTS.name, 1)

    assert trace_from_headers(tuple(sent.headers)) == started
    assert trace_from_headers(tuple(context.headers)) == started
    assert decode_event(context.value).trace == started


async def test_with_an_sdk_each_hop_is_a_child_span_through_kafka_headers(
    kafka_bus: KafkaBus, kafka_settings: KafkaSettings, own_bus: Any
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    planned = asyncio.Event()

    async def planner(event: Envelope[Any]) -> Sequence[Outbound]:
        planned.set()
        return ()

    memory_bus = await own_bus(TracingMiddleware(provider))
    planner_bus = await own_bus(TracingMiddleware(provider))
    await memory_bus.subscribe("memory", [GOALS.name], answer_with_context).start()
    await planner_bus.subscribe("planner", [CONTEXTS.name], planner).start()
    # An outside client that knows only the W3C header, not Loopline's envelope field.
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await kafka_bus.publish_raw(
        GOALS.name,
        encode_event(goal("run-1")),
        key=b"run-1",
        headers=[("traceparent", parent.encode())],
    )
    await asyncio.wait_for(planned.wait(), TIMEOUT)

    spans = {s.name: s for s in exporter.get_finished_spans()}
    goals, contexts = spans["process agent.goals"], spans["process agent.contexts"]
    assert goals.context is not None
    assert contexts.context is not None
    assert goals.parent is not None
    assert contexts.parent is not None
    assert goals.context.trace_id == contexts.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert goals.parent.span_id == 0x00F067AA0BA902B7
    assert contexts.parent.span_id == goals.context.span_id
    [context] = await read_records(kafka_settings, CONTEXTS.name, 1)
    on_the_wire = trace_from_headers(tuple(context.headers))
    assert on_the_wire is not None
    assert on_the_wire.traceparent.split("-")[2] == f"{goals.context.span_id:016x}"
