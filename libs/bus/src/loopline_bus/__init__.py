"""Loopline's typed event bus: publish events keyed by run id, subscribe handlers by group.

`KafkaBus` is the real one; `InMemoryBus` is its faithful twin for unit tests. Both decode every
message into an event, dead-letter what cannot be decoded or handled to `<topic>.dlq` with the
original bytes and the reason, and commit a message only after its outputs are acknowledged.
"""

from loopline_bus._api import (
    Bus,
    Handler,
    Outbound,
    RawRecord,
    Subscription,
    SubscriptionOptions,
)
from loopline_bus._history import Progress, Recorded, read_history
from loopline_bus._kafka import KafkaBus
from loopline_bus._memory import InMemoryBus
from loopline_bus._partitioner import partition_for
from loopline_bus._stream import RUN_TOPICS, EventStream

__all__ = [
    "RUN_TOPICS",
    "Bus",
    "EventStream",
    "Handler",
    "InMemoryBus",
    "KafkaBus",
    "Outbound",
    "Progress",
    "RawRecord",
    "Recorded",
    "Subscription",
    "SubscriptionOptions",
    "partition_for",
    "read_history",
]
