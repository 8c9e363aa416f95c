"""Trace context for runs: every event of a run carries its W3C trace, on Kafka as headers.

Without an OpenTelemetry SDK configured, the middleware only hands each output the trace of
the event it answers (a few attribute reads per event). With one, every handled event is a
span, child of the incoming context, and the outputs carry the new span's context: a run's
steps across all services form one trace.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from loopline_events import Envelope, TraceContext
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from loopline_bus._middleware import Handle, Middleware
from loopline_bus._records import Outbound, RawRecord, trace_context, trace_from_headers

TRACER_NAME = "loopline.bus"
_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def _tracer(provider: trace.TracerProvider | None) -> trace.Tracer | None:
    """The tracer of `provider` (else the global one), or None when no SDK records spans."""
    chosen = provider or trace.get_tracer_provider()
    if isinstance(chosen, _NO_SDK):
        return None
    return chosen.get_tracer(TRACER_NAME)


def _current() -> TraceContext | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    parent = carrier.get("traceparent")
    return trace_context(parent, carrier.get("tracestate", "")) if parent else None


def start_trace(name: str = "submit", provider: trace.TracerProvider | None = None) -> TraceContext:
    """A new trace for a run: the root span `name` when an SDK is configured, else fresh ids.

    Fresh ids are marked sampled, so services that do record spans keep the whole run.
    """
    tracer = _tracer(provider)
    if tracer is not None:
        with tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER):
            started = _current()
        if started is not None:
            return started
    trace_id = random.getrandbits(128) or 1
    span_id = random.getrandbits(64) or 1
    return TraceContext(traceparent=f"00-{trace_id:032x}-{span_id:016x}-01")


def _carrier(context: TraceContext) -> dict[str, str]:
    carrier = {"traceparent": context.traceparent}
    if context.tracestate:
        carrier["tracestate"] = context.tracestate
    return carrier


def _with_trace(
    outputs: Sequence[Outbound], new: TraceContext | None, inherited: TraceContext | None = None
) -> Sequence[Outbound]:
    """Outputs without a trace, or with `inherited` (the trace of their cause, which
    Envelope.follow copies), get `new`; the others keep theirs."""

    def stale(out: Outbound) -> bool:
        return out.event.trace is None or out.event.trace == inherited

    if new is None or not any(stale(out) for out in outputs):
        return outputs
    return [
        Outbound(out.topic, out.event.model_copy(update={"trace": new})) if stale(out) else out
        for out in outputs
    ]


class TracingMiddleware(Middleware):
    """Carries each run's trace from every event to the events it causes; spans when an
    OpenTelemetry SDK is configured (globally, or the `provider` given)."""

    def __init__(self, provider: trace.TracerProvider | None = None):
        self.provider = provider

    def wrap(self, handle: Handle, group: str) -> Handle:
        provider = self.provider

        async def traced(record: RawRecord, event: Envelope[Any]) -> Sequence[Outbound]:
            parent = event.trace or trace_from_headers(record.headers)
            tracer = _tracer(provider)
            if tracer is None:
                return _with_trace(await handle(record, event), parent)
            context = _PROPAGATOR.extract(_carrier(parent)) if parent is not None else None
            with tracer.start_as_current_span(
                f"process {record.topic}",
                context=context,
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.consumer.group.name": group,
                    "messaging.kafka.offset": record.offset,
                    "messaging.message.id": str(event.event_id),
                    "loopline.event_type": event.type,
                    "loopline.run_id": event.run_id,
                    "loopline.seq": event.seq,
                },
            ):
                outputs = await handle(record, event)
                return _with_trace(outputs, _current(), event.trace)

        return traced
