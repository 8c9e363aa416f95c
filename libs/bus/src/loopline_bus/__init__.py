"""Loopline's typed event bus: publish events keyed by run id, subscribe handlers by group.

`KafkaBus` is the real one; `InMemoryBus` is its faithful twin for unit tests. Both decode every
message into an event, dead-letter what cannot be decoded or handled to `<topic>.dlq` with the
original bytes and the reason, and commit a message only after its outputs are acknowledged.
Middleware (`MetricsMiddleware`, `TracingMiddleware` by default) sees every record of both.
"""

from loopline_bus._api import (
    Bus,
    Handler,
    Subscription,
    SubscriptionOptions,
    default_middleware,
)
from loopline_bus._dispatch import ADMITTED_HEADER
from loopline_bus._history import Progress, Recorded, read_history
from loopline_bus._instruments import BusMetrics
from loopline_bus._kafka import KafkaBus
from loopline_bus._memory import InMemoryBus
from loopline_bus._metrics import MetricsMiddleware
from loopline_bus._middleware import Handle, Lag, Middleware
from loopline_bus._partitioner import partition_for
from loopline_bus._records import (
    SIGNED_TYPES,
    Encoded,
    Outbound,
    RawRecord,
    trace_context,
    trace_from_headers,
)
from loopline_bus._stream import RUN_TOPICS, EventStream, partition_counts, seek_to_first
from loopline_bus._topic_admin import TopicAdmin, TopicAdminError, broker_ids, spread
from loopline_bus._topic_fit import (
    Difference,
    Durability,
    Found,
    Repair,
    TopicsUnfitError,
    Wanted,
    compare,
    durability,
    fix_command,
    summarise,
)
from loopline_bus._topics import TopicsReport, ensure_topics, inspect_topics, repair_topics
from loopline_bus._tracing import TracingMiddleware, start_trace

__all__ = [
    "ADMITTED_HEADER",
    "RUN_TOPICS",
    "SIGNED_TYPES",
    "Bus",
    "BusMetrics",
    "Difference",
    "Durability",
    "Encoded",
    "EventStream",
    "Found",
    "Handle",
    "Handler",
    "InMemoryBus",
    "KafkaBus",
    "Lag",
    "MetricsMiddleware",
    "Middleware",
    "Outbound",
    "Progress",
    "RawRecord",
    "Recorded",
    "Repair",
    "Subscription",
    "SubscriptionOptions",
    "TopicAdmin",
    "TopicAdminError",
    "TopicsReport",
    "TopicsUnfitError",
    "TracingMiddleware",
    "Wanted",
    "broker_ids",
    "compare",
    "default_middleware",
    "durability",
    "ensure_topics",
    "fix_command",
    "inspect_topics",
    "partition_counts",
    "partition_for",
    "read_history",
    "repair_topics",
    "seek_to_first",
    "spread",
    "start_trace",
    "summarise",
    "trace_context",
    "trace_from_headers",
]
