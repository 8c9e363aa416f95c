"""The bus on Apache Kafka, through aiokafka.

Each subscription is a consumer in its group with auto-commit off. A fetched batch is handled
run by run (records of one run in order, different runs concurrently), every output is sent and
acknowledged, and only then are the batch's offsets committed: a crash replays the batch, never
skips it (at-least-once; handlers are idempotent by event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from loopline_events import TopicSpec
from loopline_runtime import KafkaSettings

from loopline_bus._api import Bus, Handler, Subscription, SubscriptionOptions
from loopline_bus._dispatch import Dispatcher
from loopline_bus._records import Encoded, Outbound, RawRecord, encode_outbound
from loopline_bus._topics import ensure_topics

log = logging.getLogger("loopline.bus")

# Room for a dead letter of a maximal message (base64 grows it by a third) and its envelope.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
LAG_INTERVAL_S = 1.0
"""How often an idle consumer refreshes its lag (a busy one does after every batch)."""


@dataclass
class KafkaBus(Bus):
    """The real bus: one idempotent producer, one consumer per subscription."""

    settings: KafkaSettings = field(default_factory=KafkaSettings)
    client_id: str = "loopline"
    _producer: AIOKafkaProducer | None = field(default=None, init=False)
    _subscriptions: list[_KafkaSubscription] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not self.prefix:
            self.prefix = self.settings.topic_prefix

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaBus.start() was not called")
        return self._producer

    async def start(self) -> None:
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            **self.settings.client_options(),
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.settings.linger_ms,
            max_request_size=MAX_REQUEST_BYTES,
            max_batch_size=1024 * 1024,
        )
        await producer.start()
        self._producer = producer
        self._started()

    async def stop(self) -> None:
        self._stopped()
        for sub in list(self._subscriptions):
            await sub.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def readiness(self) -> str | None:
        if self._producer is None:
            return f"{self.client_id}: producer not started"
        for sub in self._subscriptions:
            reason = sub.readiness()
            if reason is not None:
                return reason
        return None

    async def ensure_topics(self, specs: Sequence[TopicSpec] | None = None) -> None:
        """Create the missing topics with the replication the settings ask, and check the
        others: raises TopicsUnfitError when one puts data at risk (docs/decisions/0010)."""
        await ensure_topics(self.settings, {self.topic(s.name): s for s in (specs or self.specs)})

    async def send_encoded(self, items: Sequence[Encoded]) -> None:
        """Send already-encoded messages and wait for every acknowledgement."""
        if not items:
            return
        futures = [
            await self.producer.send(
                self.topic(item.topic),
                item.value,
                key=item.key,
                headers=list(item.headers),
                partition=item.partition,
            )
            for item in items
        ]
        await asyncio.gather(*futures)
        self._published(items)

    async def publish_many(self, outbound: Sequence[Outbound]) -> None:
        await self.send_encoded(
            [encode_outbound(o, signing_key=self.signing_key) for o in outbound]
        )

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> None:
        await self.send_encoded(
            [Encoded(topic, key or b"", value, tuple(headers), partition=partition)]
        )

    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        options: SubscriptionOptions | None = None,
    ) -> Subscription:
        opts = options or SubscriptionOptions()
        dispatcher = Dispatcher(
            group=group,
            handler=handler,
            options=opts,
            max_bytes={s.name: s.max_message_bytes for s in self.specs},
            producer=self.client_id,
            middleware=self.middleware,
            signing_key=self.signing_key,
        )
        return _KafkaSubscription(self, group, tuple(topics), dispatcher, opts)


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs each assignment (operators and tests read it) and marks the first one."""

    def __init__(
        self,
        group: str,
        assigned: asyncio.Event,
        joined: asyncio.Event,
        reassigned: Callable[[], None],
        settle: Callable[[], Awaitable[None]],
    ):
        self.group = group
        self.assigned = assigned
        self.joined = joined
        self.reassigned = reassigned
        self.settle = settle

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Commit what is done before the partitions go, so their next owner does not redo it.
        with contextlib.suppress(Exception):
            await self.settle()
        self.reassigned()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)
        log.info("assignment %s", json.dumps({"group": self.group, "partitions": partitions}))
        self.reassigned()
        # Joined even with no partition: a member beyond the partition count is ready, idle.
        self.joined.set()
        if assigned:
            self.assigned.set()


class _KafkaSubscription(Subscription):
    def __init__(
        self,
        bus: KafkaBus,
        group: str,
        topics: tuple[str, ...],
        dispatcher: Dispatcher,
        options: SubscriptionOptions,
    ):
        self.bus, self.group, self.topics = bus, group, topics
        self.dispatcher, self.options = dispatcher, options
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._limit = asyncio.Semaphore(options.concurrency)
        self._assigned = asyncio.Event()
        self._joined = asyncio.Event()
        self._next_lag = 0.0
        self._pending_commit: asyncio.Task[None] | None = None
        self._moved = False
        self._failing: KafkaError | None = None

    async def start(self) -> None:
        settings = self.bus.settings
        self._consumer = AIOKafkaConsumer(
            **settings.client_options(),
            group_id=self.bus.topic(self.group),
            client_id=f"{self.bus.client_id}-{socket.gethostname()}-{os.getpid()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.options.from_beginning else "latest",
            isolation_level="read_committed",
            # Range assignment gives one member the same partition numbers of every topic, so
            # all of a run's topics (keyed alike) are consumed by one member of the group.
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_records=self.options.max_batch,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=MAX_REQUEST_BYTES,
        )
        consumer = self._consumer

        def partitions(logical: str) -> int | None:
            return len(consumer.partitions_for_topic(self.bus.topic(logical)) or ()) or None

        self.dispatcher.partitions = partitions
        self._consumer.subscribe(
            [self.bus.topic(t) for t in self.topics],
            listener=_Assigned(
                self.group,
                self._assigned,
                self._joined,
                self._mark_moved,
                self._settle_commit,
            ),
        )
        await self._consumer.start()
        self.bus._subscriptions.append(self)
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group}")

    async def wait_assigned(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._assigned.wait(), timeout)

    def readiness(self) -> str | None:
        if self._task is None or self._task.done():
            return f"consumer of {self.group} is not running"
        if not self._joined.is_set():
            return f"consumer of {self.group} has no assignment yet"
        if self._failing is not None:
            return f"consumer of {self.group} is failing: {self._failing!r}"
        return None

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._settle_commit()
        self._report_lag({})
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self in self.bus._subscriptions:
            self.bus._subscriptions.remove(self)

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                batch = await consumer.getmany(timeout_ms=200, max_records=self.options.max_batch)
            except KafkaError as exc:
                # The consumer itself failed (the group, a fetch): a consumer that stopped here
                # would keep its partitions while reading none of them. Say so, and go on.
                self._failing = exc
                log.warning("consumer of %s failed (%r); fetching again", self.group, exc)
                await asyncio.sleep(1.0)
                continue
            self._failing = None
            if self._moved:
                # Told between batches, never in the middle of one: a handler may forget what
                # it cached about its runs without losing what a batch in hand has done.
                self._moved = False
                if self.options.on_reassigned is not None:
                    self.options.on_reassigned()
            if batch:
                try:
                    await self._process(consumer, batch)
                except Exception:
                    # The broker or a dependency failed under us (not the message: handler
                    # errors are dead-lettered). Rewind to the batch's start and retry shortly.
                    log.exception("batch of %s failed; retrying it", self.group)
                    for tp, messages in batch.items():
                        consumer.seek(tp, messages[0].offset)
                    await asyncio.sleep(1.0)
            if batch or loop.time() >= self._next_lag:
                self._next_lag = loop.time() + LAG_INTERVAL_S
                self._report_lag(await self._lag(consumer))

    async def _lag(self, consumer: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
        """High-water mark minus position of each assigned partition, from what the consumer
        already knows (fetch responses carry the high-water mark): no request to the broker."""
        if not self.bus.middleware:
            return {}
        prefix_len = len(self.bus.prefix)
        lag: dict[tuple[str, int], int] = {}
        # position() is local once a fetch has positioned the partition; should one be
        # resetting instead, the consumer loop must not wait for it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                for tp in consumer.assignment():
                    try:
                        high = consumer.highwater(tp)
                        if high is None:  # nothing fetched yet: unknown, not zero
                            continue
                        position = await consumer.position(tp)
                    except (AssertionError, IllegalStateError):
                        continue  # revoked meanwhile
                    lag[(tp.topic[prefix_len:], tp.partition)] = max(0, high - position)
        return lag

    def _report_lag(self, lag: dict[tuple[str, int], int]) -> None:
        for m in self.bus.middleware:
            m.after_poll(self.group, id(self), lag)

    async def _process(self, consumer: AIOKafkaConsumer, batch: dict[Any, list[Any]]) -> None:
        prefix_len = len(self.bus.prefix)
        # One run's records are handled one after another, different runs concurrently. A
        # run's records from several topics are merged by time, each topic's kept in order.
        by_key: dict[bytes | None, list[list[tuple[int, RawRecord]]]] = defaultdict(list)
        offsets: dict[TopicPartition, int] = {}
        for tp, messages in batch.items():
            logical = tp.topic[prefix_len:]
            per_key: dict[bytes | None, list[tuple[int, RawRecord]]] = defaultdict(list)
            for m in messages:
                record = RawRecord(
                    logical,
                    tp.partition,
                    m.offset,
                    m.key,
                    m.value or b"",
                    tuple(m.headers or ()),
                    m.timestamp,
                )
                per_key[m.key].append((m.timestamp, record))
            for key, records in per_key.items():
                by_key[key].append(records)
            offsets[tp] = messages[-1].offset + 1
        ordered = (
            # Ties (the same millisecond) go by topic name, as replay orders them.
            [record for _, record in heapq.merge(*runs, key=lambda t: (t[0], t[1].topic))]
            for runs in by_key.values()
        )
        results = await asyncio.gather(*(self._handle_key(rs) for rs in ordered))
        if self.options.before_publish is not None:
            await self.options.before_publish()
        await self.bus.send_encoded([item for items in results for item in items])
        # The outputs are acknowledged, so the batch is done: its offsets are committed while
        # the next batch is fetched and handled (one broker round trip less per batch). Commits
        # stay in order: each waits for the one before it.
        await self._settle_commit()
        self._pending_commit = asyncio.create_task(self._commit(consumer, offsets))

    def _mark_moved(self) -> None:
        self._moved = True

    async def _settle_commit(self) -> None:
        """Wait for the previous batch's commit, if one is in flight."""
        pending, self._pending_commit = self._pending_commit, None
        if pending is not None:
            await pending

    async def _handle_key(self, records: list[RawRecord]) -> list[Encoded]:
        async with self._limit:
            out: list[Encoded] = []
            for record in records:
                out += await self.dispatcher.dispatch(record)
            return out

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[Any, int]) -> None:
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved these partitions during the batch; their new owner replays it.
            log.warning("commit lost to a rebalance (%s); the batch will be redelivered", exc)
