"""Reading what the log holds: every event of some topics (of one run, or of all), in order.

This is how a run's state is rebuilt from Kafka. It reads only the partitions the run's key
maps to, from the earliest retained offset up to the end as it stood when the read began, and
merges the topics by time while keeping each partition in its own order — the order in which a
consumer of those topics handles them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline_events import Envelope, EventDecodeError, decode_event
from loopline_runtime import KafkaSettings

from loopline_bus._partitioner import partition_for
from loopline_bus._stream import partition_counts, seek_to_first

Progress = Callable[[int, int], None]
"""Called with (records read, records to read) as the read goes on."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as the log holds it: its topic (logical), partition, offset and time."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    event: Envelope[Any]


async def read_history(
    settings: KafkaSettings,
    topics: Sequence[str],
    run_id: str | None = None,
    *,
    progress: Progress | None = None,
) -> list[Recorded]:
    """Every decodable event of `topics` (of `run_id` only, when given), oldest first."""
    physical = [f"{settings.topic_prefix}{t}" for t in topics]
    counts = await partition_counts(settings, physical)
    assignment = [
        TopicPartition(t, p)
        for t in physical
        for p in ([partition_for(run_id.encode(), counts[t])] if run_id else range(counts[t]))
    ]
    consumer = AIOKafkaConsumer(
        **settings.client_options(),
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        consumer.assign(assignment)
        ends = await consumer.end_offsets(assignment)
        starts = await seek_to_first(consumer, assignment)
        per_partition = await _drain(consumer, starts, ends, run_id, progress, settings)
    finally:
        await consumer.stop()
    # Ties (the same millisecond) go by topic name, as the bus orders a batch: replay folds
    # in the order memory did.
    merged = heapq.merge(*per_partition.values(), key=lambda r: (r.timestamp, r.topic))
    return list(merged)


async def _drain(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    run_id: str | None,
    progress: Progress | None,
    settings: KafkaSettings,
) -> dict[TopicPartition, list[Recorded]]:
    total = sum(ends[tp] - starts[tp] for tp in ends)
    key = run_id.encode() if run_id else None
    prefix = len(settings.topic_prefix)
    out: dict[TopicPartition, list[Recorded]] = {tp: [] for tp in ends}
    remaining = {tp for tp in ends if ends[tp] > starts[tp]}
    read = 0
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=100, max_records=5000)
        for tp, messages in batch.items():
            for m in messages:
                if m.offset >= ends[tp]:
                    continue
                read += 1
                if key is not None and m.key != key:
                    continue
                try:
                    event = decode_event(m.value or b"")
                except EventDecodeError:
                    continue  # dead-lettered by the services; not part of any state
                out[tp].append(
                    Recorded(tp.topic[prefix:], tp.partition, m.offset, m.timestamp, event)
                )
        # By position, not by the last record's offset: transaction markers take offsets too.
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        if progress is not None:
            progress(read, total)
    return out
