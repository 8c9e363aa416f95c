"""Following one run's events as they happen, without a consumer group.

A run's events are keyed by its id, so each loop topic holds them in one known partition: the
watcher reads only those partitions, from the position they had before the goal was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from loopline_events import (
    CONTEXTS,
    DECISIONS,
    OBSERVATIONS,
    RESULTS,
    Envelope,
    EventDecodeError,
    decode_event,
)
from loopline_runtime import KafkaSettings

from loopline_bus._partitioner import partition_for

RUN_TOPICS: tuple[str, ...] = (CONTEXTS.name, DECISIONS.name, OBSERVATIONS.name, RESULTS.name)
"""The topics that carry a run's steps and its end."""


async def seek_to_first(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """Position assigned `partitions` at their first retained offsets, explicitly, and return
    those offsets: aiokafka's `seek_to_beginning` is lazy and can lose to the consumer's default
    reset to the end, leaving a reader that sees nothing."""
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(list(partitions))
    for tp in partitions:
        consumer.seek(tp, starts[tp])
    return starts


class EventStream:
    """Events of the loop topics, decoded, from chosen partitions and positions."""

    def __init__(self, settings: KafkaSettings, topics: Sequence[str] = RUN_TOPICS):
        self.settings = settings
        self.topics = [f"{settings.topic_prefix}{t}" for t in topics]
        self._consumer = AIOKafkaConsumer(
            **settings.client_options(),
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=50,
        )

    async def start(self, run_id: str | None = None, *, from_beginning: bool = False) -> None:
        """Assign the partitions of `run_id` (every partition when None) and position them."""
        counts = await partition_counts(self.settings, self.topics)
        assignment = []
        for topic in self.topics:
            if run_id is None:
                assignment += [TopicPartition(topic, p) for p in range(counts[topic])]
            else:
                p = partition_for(run_id.encode(), counts[topic])
                assignment.append(TopicPartition(topic, p))
        await self._consumer.start()
        self._consumer.assign(assignment)
        if from_beginning:
            await seek_to_first(self._consumer, assignment)
        else:
            await self._consumer.seek_to_end(*assignment)
            for tp in assignment:  # resolve the positions now, before anything is sent
                await self._consumer.position(tp)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def events(self, run_id: str | None = None) -> AsyncIterator[Envelope[Any]]:
        """Every decodable event from the positions on (of `run_id` only, when given)."""
        key = run_id.encode() if run_id is not None else None
        while True:
            batch = await self._consumer.getmany(timeout_ms=500)
            records = sorted(
                (m for messages in batch.values() for m in messages), key=lambda m: m.timestamp
            )
            for message in records:
                if key is not None and message.key != key:
                    continue
                try:
                    yield decode_event(message.value or b"")
                except EventDecodeError:
                    continue  # not ours to judge: the services dead-letter it


async def partition_counts(settings: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """How many partitions each (physical) topic has; LookupError for a missing topic."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    counts = {d["topic"]: len(d["partitions"]) for d in described if d.get("partitions")}
    missing = [t for t in topics if not counts.get(t)]
    if missing:
        raise LookupError(f"no such topic: {', '.join(missing)} (are the services running?)")
    return counts
