"""The in-memory twin of the Kafka bus, for fast unit tests: same interface, same semantics.

Topics are partitioned lists, keys map to partitions with Kafka's own partitioner, groups keep
committed offsets, and every record goes through the same Dispatcher as on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from loopline_events import TopicSpec

from loopline_bus._api import Bus, Handler, Subscription, SubscriptionOptions
from loopline_bus._dispatch import Dispatcher
from loopline_bus._partitioner import partition_for
from loopline_bus._records import Encoded, Outbound, RawRecord, encode_outbound

log = logging.getLogger("loopline.bus")


@dataclass
class InMemoryBus(Bus):
    """A faithful stand-in for `KafkaBus` that lives in one event loop."""

    producer_name: str = "memory"
    _log: dict[str, list[list[RawRecord]]] = field(default_factory=dict, init=False)
    _committed: dict[tuple[str, str, int], int] = field(default_factory=dict, init=False)
    _changed: asyncio.Condition | None = field(default=None, init=False)
    _subscriptions: list[_MemorySubscription] = field(default_factory=list, init=False)
    _running: bool = field(default=False, init=False)

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def start(self) -> None:
        await self.ensure_topics()
        self._running = True
        self._started()

    async def stop(self) -> None:
        self._stopped()
        for sub in list(self._subscriptions):
            await sub.stop()
        self._running = False

    def readiness(self) -> str | None:
        if not self._running:
            return "in-memory bus not started"
        for sub in self._subscriptions:
            reason = sub.readiness()
            if reason is not None:
                return reason
        return None

    async def ensure_topics(self, specs: Sequence[TopicSpec] | None = None) -> None:
        for spec in specs or self.specs:
            self._log.setdefault(spec.name, [[] for _ in range(spec.partitions)])

    def records(self, topic: str) -> list[RawRecord]:
        """Every record of a logical topic, partition by partition (for tests)."""
        return [r for part in self._partitions(topic) for r in part]

    def _partitions(self, topic: str) -> list[list[RawRecord]]:
        if topic not in self._log:
            self._log[topic] = [[] for _ in range(self.spec(topic).partitions)]
        return self._log[topic]

    async def _append(self, items: Sequence[Encoded]) -> None:
        for item in items:
            parts = self._partitions(item.topic)
            limit = self.spec(item.topic).max_message_bytes
            if len(item.value) > limit:
                raise ValueError(
                    f"message of {len(item.value)} bytes exceeds {item.topic}'s {limit}"
                )
            p = (
                item.partition
                if item.partition is not None
                else partition_for(item.key, len(parts))
            )
            parts[p].append(
                RawRecord(
                    item.topic,
                    p,
                    len(parts[p]),
                    item.key,
                    item.value,
                    item.headers,
                    int(time.time() * 1000),
                )
            )
        self._published(items)
        async with self.changed:
            self.changed.notify_all()

    async def publish_many(self, outbound: Sequence[Outbound]) -> None:
        await self._append([encode_outbound(o, signing_key=self.signing_key) for o in outbound])

    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> None:
        await self._append([Encoded(topic, key or b"", value, tuple(headers), partition=partition)])

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
            producer=self.producer_name,
            middleware=self.middleware,
            partitions=lambda logical: len(self._partitions(logical)),
            signing_key=self.signing_key,
        )
        return _MemorySubscription(self, group, tuple(topics), dispatcher, opts)


class _MemorySubscription(Subscription):
    def __init__(
        self,
        bus: InMemoryBus,
        group: str,
        topics: tuple[str, ...],
        dispatcher: Dispatcher,
        options: SubscriptionOptions,
    ):
        self.bus, self.group, self.topics = bus, group, topics
        self.dispatcher, self.options = dispatcher, options
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._assigned = asyncio.Event()

    async def start(self) -> None:
        self.bus._subscriptions.append(self)
        for topic in self.topics:
            for p in range(len(self.bus._partitions(topic))):
                key = (self.group, topic, p)
                if key not in self.bus._committed:
                    start = (
                        0 if self.options.from_beginning else len(self.bus._partitions(topic)[p])
                    )
                    self.bus._committed[key] = start
        self._assigned.set()
        self._task = asyncio.create_task(self._run(), name=f"memory-consumer-{self.group}")

    async def wait_assigned(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._assigned.wait(), timeout)

    def readiness(self) -> str | None:
        if self._task is None or self._task.done():
            return f"consumer of {self.group} is not running"
        return None

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            async with self.bus.changed:
                self.bus.changed.notify_all()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self in self.bus._subscriptions:
            self.bus._subscriptions.remove(self)
        self._report_lag({})

    def _fetch(self) -> dict[tuple[str, int], list[RawRecord]]:
        batch: dict[tuple[str, int], list[RawRecord]] = {}
        budget = self.options.max_batch
        for topic in self.topics:
            for p, records in enumerate(self.bus._partitions(topic)):
                start = self.bus._committed.get((self.group, topic, p), 0)
                pending = records[start : start + budget]
                if pending:
                    batch[(topic, p)] = pending
                    budget -= len(pending)
                if budget <= 0:
                    return batch
        return batch

    async def _run(self) -> None:
        while not self._stopping:
            batch = self._fetch()
            if not batch:
                async with self.bus.changed:
                    if not self._stopping and not self._fetch():
                        await self.bus.changed.wait()
                continue
            try:
                outputs = await self._handle(batch)
            except Exception:
                # As on Kafka: nothing of the batch is published or committed; again soon.
                log.exception("batch of %s failed; retrying it", self.group)
                await asyncio.sleep(0.1)
                continue
            await self.bus._append(outputs)
            for (topic, p), records in batch.items():
                self.bus._committed[(self.group, topic, p)] = records[-1].offset + 1
            self._report_lag(self._lag())

    async def _handle(self, batch: dict[tuple[str, int], list[RawRecord]]) -> list[Encoded]:
        outputs: list[Encoded] = []
        for records in _by_key(batch):
            for record in records:
                outputs += await self.dispatcher.dispatch(record)
        if self.options.before_publish is not None:
            await self.options.before_publish()
        return outputs

    def _lag(self) -> dict[tuple[str, int], int]:
        return {
            (topic, p): len(records) - self.bus._committed.get((self.group, topic, p), 0)
            for topic in self.topics
            for p, records in enumerate(self.bus._partitions(topic))
        }

    def _report_lag(self, lag: dict[tuple[str, int], int]) -> None:
        for m in self.bus.middleware:
            m.after_poll(self.group, id(self), lag)


def _by_key(batch: dict[tuple[str, int], list[RawRecord]]) -> list[list[RawRecord]]:
    groups: dict[tuple[str, int, bytes | None], list[RawRecord]] = defaultdict(list)
    for (topic, p), records in batch.items():
        for record in records:
            groups[(topic, p, record.key)].append(record)
    return list(groups.values())
