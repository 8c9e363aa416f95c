"""The watchdog's view of the log: every record of the run topics, peeked at, never decoded whole.

A consumer of its own group, configured as the bus's are (docs/decisions/0004: a 6 s session,
range assignment so that one member owns the same partition of every run topic), but reading
raw records: the bus decodes every event it hands over, and the watchdog needs a few bytes of
each. Offsets are committed after the batch's watches are saved. It also tells, per
partition, when it last had read everything there was: the sweep judges a run only if the
watchdog had caught up after the run became overdue, so a lagging watchdog never takes a
run it has not read to the end for a stalled one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from loopline_bus import partition_for
from loopline_runtime import KafkaSettings, register_probe, unregister_probe

from loopline_recovery.domain import Location, Seen, peek

log = logging.getLogger("loopline.recovery.watchdog")

OnBatch = Callable[[Sequence[tuple[int, Seen]]], Awaitable[None]]
OnPartitions = Callable[[set[int]], Awaitable[None]]

MAX_FETCH_BYTES = 4 * 1024 * 1024


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, feed: WatchFeed):
        self.feed = feed

    async def on_partitions_revoked(self, revoked: Any) -> None:
        partitions = {tp.partition for tp in revoked}
        for partition in partitions:
            self.feed.fresh.pop(partition, None)
        await self.feed.on_revoked(partitions)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)
        log.info("assignment %s", json.dumps({"group": self.feed.group, "partitions": partitions}))
        self.feed.assigned.set()
        await self.feed.on_assigned({tp.partition for tp in assigned})


class WatchFeed:
    """Consumes the run topics as group `group`, handing each batch's peeks to `on_batch`."""

    def __init__(
        self,
        settings: KafkaSettings,
        group: str,
        topics: Sequence[str],
        *,
        on_batch: OnBatch,
        on_assigned: OnPartitions,
        on_revoked: OnPartitions,
    ):
        self.settings, self.group, self.topics = settings, group, tuple(topics)
        self.on_batch, self.on_assigned, self.on_revoked = on_batch, on_assigned, on_revoked
        self.fresh: dict[int, float] = {}
        """Partition → when the watchdog last had read all its run topics to the end."""
        self.assigned = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failing: KafkaError | None = None

    async def start(self) -> None:
        prefix = self.settings.topic_prefix
        self._consumer = AIOKafkaConsumer(
            **self.settings.client_options(),
            group_id=f"{prefix}{self.group}",
            client_id=f"{self.group}-{socket.gethostname()}-{os.getpid()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            max_poll_records=1000,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=MAX_FETCH_BYTES,
        )
        self._consumer.subscribe([prefix + t for t in self.topics], listener=_Rebalance(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")
        register_probe(self)

    def readiness(self) -> str | None:
        """None once the feed consumes as a member of its group (for /readyz)."""
        if self._task is None or self._task.done():
            return f"consumer of {self.group} is not running"
        if not self.assigned.is_set():
            return f"consumer of {self.group} has no assignment yet"
        if self._failing is not None:
            return f"consumer of {self.group} is failing: {self._failing!r}"
        return None

    async def stop(self) -> None:
        unregister_probe(self)
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stopping.is_set():
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            except KafkaError as exc:  # never a consumer that holds partitions and reads none
                self._failing = exc
                log.warning("watchdog consumer failed (%r); fetching again", exc)
                await asyncio.sleep(1.0)
                continue
            self._failing = None
            try:
                if batch:
                    await self._process(consumer, batch)
                await self._note_fresh(consumer)
            except Exception:
                # Redis or the broker failed under us: read the batch again shortly.
                log.exception("watchdog batch failed; retrying it")
                for tp, messages in batch.items():
                    with contextlib.suppress(IllegalStateError):  # unless no longer ours
                        consumer.seek(tp, messages[0].offset)
                await asyncio.sleep(1.0)

    async def _process(self, consumer: AIOKafkaConsumer, batch: dict[Any, list[Any]]) -> None:
        skip = len(self.settings.topic_prefix)
        seen: list[tuple[int, int, Seen]] = []
        offsets = {}
        assigned = consumer.assignment()
        for tp, messages in batch.items():
            if tp not in assigned:
                continue  # taken away meanwhile: its next owner reads it from the last commit
            topic = tp.topic[skip:]
            count = len(consumer.partitions_for_topic(tp.topic) or ())
            for m in messages:
                where = Location(topic, tp.partition, m.offset)
                peeked = peek(where, m.value or b"", m.headers or ())
                if peeked is None:
                    continue
                if count and partition_for(peeked.run_id.encode(), count) != tp.partition:
                    continue  # landed outside its run's partition: memory routes it there
                seen.append((m.timestamp, tp.partition, peeked))
            offsets[tp] = messages[-1].offset + 1
        # A batch holds several topics: in time order (and within a millisecond, in the order
        # of a step's parts), a run's goal comes before its context.
        seen.sort(key=lambda s: (s[0], s[2].kind))
        await self.on_batch([(partition, peeked) for _, partition, peeked in seen])
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("watchdog commit lost to a rebalance (%s); redelivered", exc)

    async def _note_fresh(self, consumer: AIOKafkaConsumer) -> None:
        """Note each owned partition whose run topics are all read to their end.

        The ends are asked of the broker (one list-offsets round trip), not taken from the
        last fetch: a fetch answered just before a run's next record was written says the
        partition is read to the end, and a busy watchdog would then judge the run on a
        view without its progress. Asked so, "caught up at t" means every record written
        before t has been read.
        """
        asked_at = time.time()
        assigned = consumer.assignment()
        if not assigned:
            return
        try:
            ends = await consumer.end_offsets(list(assigned))
            behind = {tp.partition for tp in assigned if await consumer.position(tp) < ends[tp]}
        except (IllegalStateError, KafkaError, KeyError):
            return  # a rebalance took a partition meanwhile, or the broker is away: next round
        for partition in {tp.partition for tp in assigned} - behind:
            self.fresh[partition] = asked_at
