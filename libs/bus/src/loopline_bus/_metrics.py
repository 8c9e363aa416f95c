"""MetricsMiddleware: the bus's Prometheus metrics, the same on Kafka and in memory."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from loopline_events import EVENT_TYPES, DeadLetterKind, Envelope

from loopline_bus._derived import RUN_STARTS, UNKNOWN, DerivedMetrics
from loopline_bus._instruments import BusMetrics
from loopline_bus._middleware import Handle, Lag, Middleware
from loopline_bus._records import EVENT_TYPE_HEADER, Encoded, Outbound, RawRecord


def _known_type(event_type: str | None) -> str:
    # A type read from bad input is client data: only declared types become label values.
    return event_type if event_type in EVENT_TYPES else UNKNOWN


def _header_type(headers: tuple[tuple[str, bytes], ...]) -> str:
    for name, value in headers:
        if name == EVENT_TYPE_HEADER:
            return _known_type(value.decode(errors="replace"))
    return UNKNOWN


class MetricsMiddleware(Middleware):
    """Counts what is consumed, produced, retried and dead-lettered, times handlers, tracks
    consumer lag, and derives run, model and tool metrics from the events produced."""

    def __init__(self, metrics: BusMetrics | None = None):
        self.metrics = metrics or BusMetrics.default()
        self.derived = DerivedMetrics(self.metrics)
        self._lag_series: dict[tuple[str, int], set[tuple[str, str, str]]] = {}

    def wrap(self, handle: Handle, group: str) -> Handle:
        duration = self.metrics.handler_duration
        derived = self.derived

        async def timed(record: RawRecord, event: Envelope[Any]) -> Sequence[Outbound]:
            start = time.perf_counter()
            try:
                outputs = await handle(record, event)
            finally:
                duration(record.topic, event.type).observe(time.perf_counter() - start)
            if event.type in RUN_STARTS:
                derived.answered(event, outputs)
            return outputs

        return timed

    def after_decode(self, record: RawRecord, event_type: str | None) -> None:
        self.metrics.consumed(record.topic, _known_type(event_type)).inc()

    def before_retry(
        self, record: RawRecord, event: Envelope[Any], error: Exception, attempt: int
    ) -> None:
        self.metrics.retries(record.topic, event.type).inc()

    def after_dead_letter(self, record: RawRecord, kind: DeadLetterKind) -> None:
        self.metrics.dead_lettered(record.topic, kind.value).inc()

    def after_publish(self, items: Sequence[Encoded]) -> None:
        produced = self.metrics.produced
        for item in items:
            event = item.event
            if event is None:
                produced(item.topic, _header_type(item.headers)).inc()
                continue
            produced(item.topic, event.type).inc()
            if item.cause is not None:
                self.derived.produced(event, item.cause)

    def after_poll(self, group: str, member: int, lag: Lag) -> None:
        gauge = self.metrics.lag
        series = {(group, topic, str(partition)): n for (topic, partition), n in lag.items()}
        for labels, n in series.items():
            gauge(*labels).set(n)
        # Partitions moved to another member (or a stopped consumer): their lag is not ours.
        previous = self._lag_series.get((group, member), set())
        for labels in previous - series.keys():
            gauge.remove(*labels)
        if series:
            self._lag_series[(group, member)] = set(series)
        else:
            self._lag_series.pop((group, member), None)
