"""Probes for the bad-input suite: write any bytes to a topic, as a hostile or buggy client
would, and see what became of them: the dead-letter entry recovery recorded, the line a
service logged, the run that still completed behind them."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from loopline_bus import EventStream, partition_for, read_history
from loopline_events import (
    CONTEXTS,
    ContextAssembled,
    Envelope,
    Message,
    extended,
    request_messages,
)
from loopline_runtime import KafkaSettings, schema_name

from loopline_testing._system import System

PARTITIONS = 12
"""Partitions of every topic the services create."""


@dataclass(frozen=True)
class Placed:
    """Where a message landed."""

    topic: str
    """The logical topic."""
    partition: int
    offset: int


async def produce(
    system: System,
    topic: str,
    value: bytes,
    *,
    key: str,
    headers: Sequence[tuple[str, bytes]] = (),
    compressed: bool = False,
) -> Placed:
    """Write `value` to the logical `topic` of the system's namespace, keyed by `key`.

    `compressed` sends it gzip-compressed: the broker checks the compressed size against the
    topic's limit, so a payload far over the limit once decompressed still gets through, as
    it does from any client that compresses.
    """
    producer = AIOKafkaProducer(
        **system.kafka.client_options(),
        compression_type="gzip" if compressed else None,
        max_request_size=8 * 1024 * 1024,
        acks="all",
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            f"{system.kafka.topic_prefix}{topic}", value, key=key.encode(), headers=list(headers)
        )
    finally:
        await producer.stop()
    return Placed(topic, sent.partition, sent.offset)


def sibling_run_id(key: str, prefix: str = "good") -> str:
    """A fresh run id whose messages land in the same partitions as `key`'s: a good run right
    behind a bad message, which it must not be held up by."""
    wanted = partition_for(key.encode(), PARTITIONS)
    while True:
        candidate = f"{prefix}-{uuid.uuid4().hex[:10]}"
        if partition_for(candidate.encode(), PARTITIONS) == wanted:
            return candidate


def envelope(event_type: str, run_id: str, payload: Any, **fields: Any) -> bytes:
    """The JSON of an event envelope, valid or not, as a client could write it."""
    return json.dumps({"type": event_type, "run_id": run_id, "payload": payload, **fields}).encode()


def gzip_ratio(value: bytes) -> float:
    """How much gzip shrinks `value` (for a test to show its payload gets past the broker)."""
    return len(value) / len(gzip.compress(value))


async def dead_letters(system: System, placed: Placed) -> list[dict[str, Any]]:
    """What recovery's ledger holds of the message at `placed` (one entry per group that
    could not handle it)."""
    schema = schema_name("recovery", system.kafka.topic_prefix)
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".dead_letters')
        if exists is None:
            return []
        rows = await conn.fetch(
            f"""
            SELECT run_id, source_topic, source_partition, source_offset, consumer_group,
                kind, error, event_type
            FROM "{schema}".dead_letters
            WHERE source_topic = $1 AND source_partition = $2 AND source_offset = $3
            ORDER BY consumer_group
            """,
            placed.topic,
            placed.partition,
            placed.offset,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def wait_for_dead_letters(
    system: System, placed: Placed, groups: int = 1, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """The ledger's entries of the message at `placed`, once `groups` of them are there."""
    deadline = time.monotonic() + timeout
    while True:
        found = await dead_letters(system, placed)
        if len(found) >= groups or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def committed(system: System, group: str, placed: Placed) -> int | None:
    """The offset `group` (a service's group, e.g. `memory`) committed in the partition of the
    message at `placed`: past it once the service is done with it."""
    tp = TopicPartition(f"{system.kafka.topic_prefix}{placed.topic}", placed.partition)
    admin = AIOKafkaAdminClient(**system.kafka.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            f"{system.kafka.topic_prefix}{group}", partitions=[tp]
        )
    finally:
        await admin.close()
    found = offsets.get(tp)
    return None if found is None or found.offset < 0 else int(found.offset)


async def wait_until_passed(
    system: System, group: str, placed: Placed, timeout: float = 60.0
) -> bool:
    """Whether `group` commits past the message at `placed` within `timeout` seconds: it
    handled it (or dead-lettered it) and moved on, rather than retrying it forever."""
    deadline = time.monotonic() + timeout
    while True:
        offset = await committed(system, group, placed)
        if offset is not None and offset > placed.offset:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)


async def wait_for_log_line(log: Path, *parts: str, timeout: float = 60.0) -> str | None:
    """The first line of `log` holding every one of `parts`, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while True:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        for line in text.splitlines():
            if all(p in line for p in parts):
                return line
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.2)


async def first_events(
    stream: EventStream, count: int, timeout: float = 60.0
) -> list[Envelope[Any]]:
    """The next `count` events of a started stream (TimeoutError after `timeout` seconds)."""

    async def collect() -> list[Envelope[Any]]:
        seen: list[Envelope[Any]] = []
        async for event in stream.events():
            seen.append(event)
            if len(seen) == count:
                break
        return seen

    return await asyncio.wait_for(collect(), timeout)


async def context_requests(
    settings: KafkaSettings, run_id: str, artifacts: Mapping[str, str] | None = None
) -> list[tuple[ContextAssembled, list[Message]]]:
    """Each context of the run on agent.contexts, in order, with the messages of the request
    it stands for: the run's history rebuilt from the contexts, seen through each one's
    window (`artifacts` gives stored outputs' text; without it they show empty)."""
    recorded = await read_history(settings, [CONTEXTS.name], run_id)
    history: tuple[Message, ...] = ()
    out: list[tuple[ContextAssembled, list[Message]]] = []
    seen: set[Any] = set()
    for r in recorded:
        context = r.event.payload
        if not isinstance(context, ContextAssembled) or r.event.event_id in seen:
            continue
        seen.add(r.event.event_id)
        history = extended(history, context)
        texts = dict(artifacts or {})
        for m in history:
            if m.artifact is not None:
                texts.setdefault(m.artifact.ref, "")
        out.append((context, request_messages(history, context.window, texts)))
    return out
