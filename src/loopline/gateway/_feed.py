"""The gateway's view of the log: one consumer following every run's partitions, handing each
followed run's events to the streams that follow it, and readers for a run's past.

A run's events are keyed by its id, so each run topic holds them in one known partition. The
feed reads every partition of the run topics from the end, and decodes only the records of
runs someone follows (a dictionary lookup on the key for every other record). A stream that
starts asks the feed where it stands in the run's partitions; what came before that, it reads
with a history reader; what comes after, the feed hands it. Both keep each partition's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from loopline_bus import RUN_TOPICS, partition_counts, partition_for
from loopline_events import Envelope, EventDecodeError, decode_event
from loopline_runtime import KafkaSettings, register_probe, unregister_probe

log = logging.getLogger("loopline.gateway.feed")

FOLLOWED_TOPICS: tuple[str, ...] = RUN_TOPICS
"""What a run's event stream carries: its contexts, decisions, tool results and end. A topic
added here (the model's streamed text, say) is followed, resumed and ordered like the others."""

MAX_FETCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Item:
    """A run's event where the log holds it: its topic (index in FOLLOWED_TOPICS), offset in
    the run's partition of that topic, and time."""

    topic: int
    offset: int
    timestamp: int
    event: Envelope[Any]


class FollowerOverflowError(Exception):
    """A stream's client fell too far behind; it resumes from its last event id."""


@dataclass(eq=False)
class Follower:
    """One stream's subscription to a run: what the feed hands it, and where the feed stood
    in the run's partitions when it started following (the end of what it must read itself)."""

    key: bytes
    positions: tuple[int, ...]
    limit: int
    queue: asyncio.Queue[Item | None] = field(default_factory=asyncio.Queue)

    def push(self, item: Item) -> None:
        if self.queue.qsize() >= self.limit:
            self.queue.put_nowait(None)  # the reader raises FollowerOverflowError
            return
        self.queue.put_nowait(item)

    async def next(self, timeout: float) -> Item | None:
        """The next event; None when none came within `timeout`."""
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if item is None:
            raise FollowerOverflowError("the client fell too far behind")
        return item


class RunFeed:
    """Follows the run topics' every partition from the end; hands runs' events to followers."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        topics: Sequence[str] = FOLLOWED_TOPICS,
        readers: int = 4,
        follower_queue: int = 10_000,
    ):
        self.settings = settings
        self.physical = tuple(settings.topic_prefix + t for t in topics)
        self.follower_queue = follower_queue
        self._readers_wanted = readers
        self._index = {t: i for i, t in enumerate(self.physical)}
        self._counts: dict[str, int] = {}
        self._next: dict[TopicPartition, int] = {}
        self._followers: dict[bytes, set[Follower]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._readers: asyncio.Queue[AIOKafkaConsumer] = asyncio.Queue()
        self._all_readers: list[AIOKafkaConsumer] = []
        self._task: asyncio.Task[None] | None = None
        self._failing: KafkaError | None = None
        self.events_seen = 0
        self.events_handed = 0

    async def start(self) -> None:
        self._counts = await partition_counts(self.settings, self.physical)
        consumer = AIOKafkaConsumer(
            **self.settings.client_options(),
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=MAX_FETCH_BYTES,
        )
        await consumer.start()
        assignment = [TopicPartition(t, p) for t in self.physical for p in range(self._counts[t])]
        consumer.assign(assignment)
        await consumer.seek_to_end(*assignment)
        for tp in assignment:
            self._next[tp] = await consumer.position(tp)
        self._consumer = consumer
        for _ in range(self._readers_wanted):
            reader = _reader(self.settings)
            await reader.start()
            self._all_readers.append(reader)
            self._readers.put_nowait(reader)
        self._task = asyncio.create_task(self._run(), name="gateway-feed")
        register_probe(self)

    async def stop(self) -> None:
        unregister_probe(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for reader in self._all_readers:
            await reader.stop()
        self._all_readers.clear()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def readiness(self) -> str | None:
        """None while the feed reads (for /readyz)."""
        if self._task is None or self._task.done():
            return "the gateway's feed is not running"
        if self._failing is not None:
            return f"the gateway's feed is failing: {self._failing!r}"
        return None

    def partitions(self, run_id: str) -> list[TopicPartition]:
        """The run's partition of each followed topic, in FOLLOWED_TOPICS order."""
        key = run_id.encode()
        return [TopicPartition(t, partition_for(key, self._counts[t])) for t in self.physical]

    def follow(self, run_id: str) -> Follower:
        """Start handing `run_id`'s events to a new follower. Its `positions` say where the
        feed stood: everything of the run at or past them reaches the follower."""
        key = run_id.encode()
        positions = tuple(self._next[tp] for tp in self.partitions(run_id))
        follower = Follower(key, positions, self.follower_queue)
        self._followers.setdefault(key, set()).add(follower)
        return follower

    def unfollow(self, follower: Follower) -> None:
        followers = self._followers.get(follower.key)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[follower.key]

    @property
    def followed(self) -> int:
        """Streams following a run now."""
        return sum(len(f) for f in self._followers.values())

    async def offsets_at(self, run_id: str, timestamp_ms: int) -> tuple[int | None, ...]:
        """Per followed topic, the first offset of the run's partition written at or after
        `timestamp_ms` (None: none was)."""
        tps = self.partitions(run_id)
        async with self._reader() as reader:
            reader.assign(tps)
            found = await reader.offsets_for_times(dict.fromkeys(tps, timestamp_ms))
        return tuple(found[tp].offset if found.get(tp) is not None else None for tp in tps)

    async def history(self, run_id: str, start: Sequence[int], end: Sequence[int]) -> list[Item]:
        """The run's events in [start, end) of its partition of each followed topic, merged by
        time with each partition's order kept (as a consumer of those topics sees them)."""
        tps = self.partitions(run_id)
        key = run_id.encode()
        wanted = {tp: (s, e) for tp, s, e in zip(tps, start, end, strict=True) if e > s}
        per_topic: dict[TopicPartition, list[Item]] = {tp: [] for tp in wanted}
        if not wanted:
            return []
        async with self._reader() as reader:
            reader.assign(list(wanted))
            for tp, (s, _) in wanted.items():
                reader.seek(tp, s)
            remaining = set(wanted)
            while remaining:
                batch = await reader.getmany(*remaining, timeout_ms=200, max_records=5000)
                for tp, messages in batch.items():
                    e = wanted[tp][1]
                    for m in messages:
                        if m.offset < e and m.key == key:
                            item = self._item(tp, m)
                            if item is not None:
                                per_topic[tp].append(item)
                for tp in list(remaining):
                    if await reader.position(tp) >= wanted[tp][1]:
                        remaining.discard(tp)
        return list(heapq.merge(*per_topic.values(), key=lambda i: (i.timestamp, i.topic)))

    @contextlib.asynccontextmanager
    async def _reader(self) -> Any:
        reader = await self._readers.get()
        try:
            yield reader
        finally:
            reader.unsubscribe()
            self._readers.put_nowait(reader)

    def _item(self, tp: TopicPartition, message: Any) -> Item | None:
        try:
            event = decode_event(message.value or b"")
        except EventDecodeError:
            return None  # not ours to judge: the services dead-letter it
        return Item(self._index[tp.topic], message.offset, message.timestamp, event)

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            except KafkaError as exc:
                self._failing = exc
                log.warning("the gateway's feed failed (%r); fetching again", exc)
                await asyncio.sleep(1.0)
                continue
            self._failing = None
            self._hand_out(batch)

    def _hand_out(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        """Give each followed run's records of the batch to its followers, merged by time,
        each partition in order; note where the feed now stands. No await: a stream that
        starts following sees either all of a batch or none of it."""
        followed = self._followers
        per_tp: list[list[tuple[int, int, Any, TopicPartition]]] = []
        for tp, messages in batch.items():
            self.events_seen += len(messages)
            mine = [
                (m.timestamp, self._index[tp.topic], m, tp) for m in messages if m.key in followed
            ]
            if mine:
                per_tp.append(mine)
            self._next[tp] = messages[-1].offset + 1
        for _, _, message, tp in heapq.merge(*per_tp, key=lambda x: (x[0], x[1])):
            item = self._item(tp, message)
            if item is None:
                continue
            for follower in followed.get(message.key, ()):
                follower.push(item)
                self.events_handed += 1


def _reader(settings: KafkaSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.client_options(),
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=MAX_FETCH_BYTES,
    )
