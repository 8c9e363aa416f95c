"""TracingMiddleware on the in-memory bus: a run's events carry one trace, and with an
OpenTelemetry SDK every handled event is a span of it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from loopline_bus import (
    InMemoryBus,
    Outbound,
    TracingMiddleware,
    start_trace,
    trace_context,
    trace_from_headers,
)
from loopline_events import (
    CONTEXTS,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    ContextAssembled,
    Envelope,
    GoalSubmitted,
    Message,
    ModelDecided,
    RunCompleted,
    ToolCall,
    ToolCallSucceeded,
    TraceContext,
    decode_event,
    encode_event,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TIMEOUT = 10.0
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def goal(run_id: str, trace: TraceContext | None = None) -> Envelope[GoalSubmitted]:
    return Envelope.of(
        GoalSubmitted(goal="add 2 and 3"), run_id=run_id, producer="sdk", trace=trace
    )


async def memory(event: Envelope[Any]) -> Sequence[Outbound]:
    if isinstance(event.payload, GoalSubmitted):
        # Built without follow(): no trace of its own, the middleware gives it the run's.
        payload = ContextAssembled(
            agent="default", model="demo", appended=(Message(role="user", content="2+3"),)
        )
        fresh = Envelope.of(payload, run_id=event.run_id, producer="memory", seq=1)
        return [Outbound(CONTEXTS.name, fresh)]
    done = RunCompleted(answer="5", steps=1)
    return [Outbound(RESULTS.name, event.follow(done, producer="memory"))]


async def planner(event: Envelope[Any]) -> Sequence[Outbound]:
    call = ToolCall(call_id="c1", tool="calculator", arguments={"expression": "2+3"})
    decided = ModelDecided(model="demo", tool_calls=(call,))
    return [Outbound(DECISIONS.name, event.follow(decided, producer="planner"))]


async def executor(event: Envelope[Any]) -> Sequence[Outbound]:
    result = ToolCallSucceeded(call_id="c1", tool="calculator", output="5")
    return [Outbound(OBSERVATIONS.name, event.follow(result, producer="executor"))]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def run_loop(bus: InMemoryBus, run: Envelope[GoalSubmitted]) -> Envelope[Any]:
    """The ring of one turn, as the four services wire it; the run's result."""
    for group, topics, handler in (
        ("memory", [GOALS.name, OBSERVATIONS.name], memory),
        ("planner", [CONTEXTS.name], planner),
        ("executor", [DECISIONS.name], executor),
    ):
        await bus.subscribe(group, topics, handler).start()
    await bus.publish(GOALS.name, run)
    async with asyncio.timeout(TIMEOUT), bus.changed:
        await bus.changed.wait_for(lambda: bool(bus.records(RESULTS.name)))
    return decode_event(bus.records(RESULTS.name)[0].value)


@pytest.fixture
async def traced_bus(provider: TracerProvider) -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus(middleware=(TracingMiddleware(provider),))
    await bus.start()
    yield bus
    await bus.stop()


async def test_a_runs_steps_form_one_trace_of_parent_and_child_spans(
    traced_bus: InMemoryBus, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    started = start_trace("submit goal", provider)
    result = await run_loop(traced_bus, goal("run-1", started))

    spans: dict[str, ReadableSpan] = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        "submit goal",
        "process agent.goals",
        "process agent.contexts",
        "process agent.decisions",
        "process agent.observations",
    }
    trace_id = int(started.traceparent.split("-")[1], 16)
    assert {s.context.trace_id for s in spans.values() if s.context} == {trace_id}
    chain = [
        "submit goal",
        "process agent.goals",
        "process agent.contexts",
        "process agent.decisions",
        "process agent.observations",
    ]
    for parent, child in itertools.pairwise(chain):
        child_parent = spans[child].parent
        parent_context = spans[parent].context
        assert child_parent is not None
        assert parent_context is not None
        assert child_parent.span_id == parent_context.span_id, f"{child} is not under {parent}"
    # The result carries the context of the span that produced it, in its envelope and header.
    last = spans["process agent.observations"].context
    assert last is not None
    assert result.trace is not None
    assert result.trace.traceparent.startswith(f"00-{trace_id:032x}-{last.span_id:016x}-")
    record = traced_bus.records(RESULTS.name)[0]
    assert trace_from_headers(record.headers) == result.trace
    assert spans["process agent.contexts"].attributes == {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.destination.name": "agent.contexts",
        "messaging.destination.partition.id": str(traced_bus.records(CONTEXTS.name)[0].partition),
        "messaging.consumer.group.name": "planner",
        "messaging.kafka.offset": 0,
        "messaging.message.id": str(
            decode_event(traced_bus.records(CONTEXTS.name)[0].value).event_id
        ),
        "loopline.event_type": "ContextAssembled",
        "loopline.run_id": "run-1",
        "loopline.seq": 1,
    }


async def test_without_an_sdk_every_event_carries_the_goals_trace() -> None:
    bus = InMemoryBus(middleware=(TracingMiddleware(),))  # the global provider: none set
    await bus.start()
    try:
        started = start_trace()
        await run_loop(bus, goal("run-1", started))
        topics = (GOALS.name, CONTEXTS.name, DECISIONS.name, OBSERVATIONS.name, RESULTS.name)
        records = [r for topic in topics for r in bus.records(topic)]
    finally:
        await bus.stop()
    assert len(records) == 5
    assert {decode_event(r.value).trace for r in records} == {started}
    assert {trace_from_headers(r.headers) for r in records} == {started}


async def test_a_trace_only_in_the_headers_is_carried_on() -> None:
    """A producer that sets only the `traceparent` header (any Kafka client) is followed too."""

    async def answer(event: Envelope[Any]) -> Sequence[Outbound]:
        out = Envelope.of(RunCompleted(answer="ok", steps=0), run_id=event.run_id, producer="m")
        return [Outbound(RESULTS.name, out)]

    bus = InMemoryBus(middleware=(TracingMiddleware(),))
    await bus.start()
    try:
        await bus.subscribe("memory", [GOALS.name], answer).start()
        headers = [("traceparent", TRACEPARENT.encode()), ("tracestate", b"vendor=1")]
        await bus.publish_raw(
            GOALS.name, encode_event(goal("run-1")), key=b"run-1", headers=headers
        )
        async with asyncio.timeout(TIMEOUT), bus.changed:
            await bus.changed.wait_for(lambda: bool(bus.records(RESULTS.name)))
        result_trace = decode_event(bus.records(RESULTS.name)[0].value).trace
    finally:
        await bus.stop()
    assert result_trace == TraceContext(traceparent=TRACEPARENT, tracestate="vendor=1")


async def test_a_malformed_traceparent_is_ignored_and_the_event_handled() -> None:
    bus = InMemoryBus(middleware=(TracingMiddleware(),))
    await bus.start()
    try:
        await bus.subscribe("memory", [GOALS.name, OBSERVATIONS.name], memory).start()
        headers = [("traceparent", b"00-not-a-trace-01")]
        await bus.publish_raw(
            GOALS.name, encode_event(goal("run-1")), key=b"run-1", headers=headers
        )
        async with asyncio.timeout(TIMEOUT), bus.changed:
            await bus.changed.wait_for(lambda: bool(bus.records(CONTEXTS.name)))
        context = decode_event(bus.records(CONTEXTS.name)[0].value)
    finally:
        await bus.stop()
    assert context.trace is None
    assert not bus.records("agent.goals.dlq")


async def test_a_dead_letter_stays_in_its_runs_trace() -> None:
    bus = InMemoryBus(middleware=())
    await bus.start()
    try:
        await bus.subscribe("memory", [GOALS.name], memory).start()
        headers = [("traceparent", TRACEPARENT.encode())]
        await bus.publish_raw(GOALS.name, b"{broken", key=b"run-1", headers=headers)
        async with asyncio.timeout(TIMEOUT), bus.changed:
            await bus.changed.wait_for(lambda: bool(bus.records("agent.goals.dlq")))
        letter = decode_event(bus.records("agent.goals.dlq")[0].value)
    finally:
        await bus.stop()
    assert letter.trace == TraceContext(traceparent=TRACEPARENT)


def test_trace_context_accepts_only_w3c_traceparents() -> None:
    assert trace_context(TRACEPARENT.upper()) == TraceContext(traceparent=TRACEPARENT)
    assert trace_context("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None  # invalid trace id
    assert trace_context("00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01") is None
    assert trace_context("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") is None
    assert trace_context("00-4bf92f35-00f067aa0ba902b7-01") is None
    long_state = ",".join(f"v{i}=" + "x" * 30 for i in range(40))
    assert trace_context(TRACEPARENT, long_state) == TraceContext(traceparent=TRACEPARENT)


def test_start_trace_without_an_sdk_makes_fresh_sampled_ids() -> None:
    first, second = start_trace(), start_trace()
    assert first != second
    assert trace_context(first.traceparent) == first
    assert first.traceparent.endswith("-01")
