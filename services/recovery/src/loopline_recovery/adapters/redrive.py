"""What the watchdog does to the world: re-publish a record from the log, ask memory to fail
a run, and deny a held call no one decided on in time.

A re-drive reads the pending record again at its offset (re-drives are rare, so the watchdog
keeps only where a record is, never its bytes) and re-publishes it unchanged to its topic,
with a `loopline-redrive` header: same key, same event id, so every consumer takes it for the
duplicate it is, and only the service that had lost the step acts on it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID, uuid5

from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline_bus import Bus
from loopline_events import CONTROL, ApprovalDecided, Envelope, FailRun
from loopline_runtime import KafkaSettings

from loopline_recovery.domain import (
    REDRIVE_HEADER,
    REDRIVE_OF_HEADER,
    Expire,
    Fail,
    Location,
    Watch,
)

log = logging.getLogger("loopline.recovery.watchdog")

PRODUCER = "recovery"
FAIL_RUN_IDS = UUID("6f1c3e0a-7d52-4c55-9a43-2b8e5f0c9d11")
"""Namespace of the ids of the watchdog's FailRun commands."""

DENIAL_IDS = UUID("0b7d9a52-3e1f-4c86-8f2a-5d6c1e9b4a73")
"""Namespace of the ids of the watchdog's denials of held calls."""

READ_TIMEOUT_S = 10.0


def fail_run_id(watch: Watch, reason: str) -> UUID:
    """The same stall of the same run always yields the same command id: asking again is a
    duplicate memory recognises."""
    return uuid5(FAIL_RUN_IDS, f"{watch.run_id}/{watch.seq}/{watch.progress_at!r}/{reason}")


def denial_id(watch: Watch, call_id: str) -> UUID:
    """A held call is denied on timeout once: asking again is a duplicate memory recognises."""
    return uuid5(DENIAL_IDS, f"{watch.run_id}/{watch.seq}/{call_id}")


class LogRedriver:
    """Reads records back by offset and re-publishes them; publishes FailRun commands."""

    def __init__(self, bus: Bus, settings: KafkaSettings):
        self.bus, self.settings = bus, settings
        self._reader: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def stop(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    async def redrive(self, where: Location, tries: int) -> bool:
        """Re-publish the record at `where`; False when the log no longer holds it."""
        record = await self._read(where)
        if record is None:
            return False
        ours = (REDRIVE_HEADER, REDRIVE_OF_HEADER)
        headers = [(k, v) for k, v in (record.headers or ()) if k not in ours]
        original = f"{where.topic}:{where.partition}:{where.offset}"
        headers += [(REDRIVE_HEADER, str(tries).encode()), (REDRIVE_OF_HEADER, original.encode())]
        await self.bus.publish_raw(where.topic, record.value, key=record.key, headers=headers)
        return True

    async def fail(self, watch: Watch, fail: Fail) -> None:
        """Ask memory to fail the run (on agent.control); it answers with RunFailed."""
        command = FailRun(
            reason=fail.reason, message=fail.message, requested_by=PRODUCER, at_step=fail.at_step
        )
        event = Envelope.of(
            command,
            run_id=watch.run_id,
            producer=PRODUCER,
            seq=watch.seq,
            tenant=watch.tenant,
            event_id=fail_run_id(watch, fail.reason.value),
        )
        await self.bus.publish(CONTROL.name, event)

    async def deny(self, watch: Watch, expire: Expire) -> None:
        """Deny held calls no one decided on in time (on agent.control, signed as every
        command); memory records each denial as the call's result, which the model reads."""
        for call_id in expire.call_ids:
            answer = ApprovalDecided(
                call_id=call_id, approved=False, reason=expire.message, decided_by=PRODUCER
            )
            event = Envelope.of(
                answer,
                run_id=watch.run_id,
                producer=PRODUCER,
                seq=watch.seq,
                tenant=watch.tenant,
                event_id=denial_id(watch, call_id),
            )
            await self.bus.publish(CONTROL.name, event)

    async def _read(self, where: Location) -> Any | None:
        tp = TopicPartition(self.settings.topic_prefix + where.topic, where.partition)
        async with self._lock:
            reader = await self._started()
            reader.assign([tp])
            reader.seek(tp, where.offset)
            async with asyncio.timeout(READ_TIMEOUT_S):
                while True:
                    batch = await reader.getmany(tp, timeout_ms=500, max_records=1)
                    for message in batch.get(tp, []):
                        return message if message.offset == where.offset else None
                    if await reader.position(tp) > where.offset:
                        return None  # not there (compacted away, or a transaction marker)

    async def _started(self) -> AIOKafkaConsumer:
        if self._reader is None:
            self._reader = AIOKafkaConsumer(
                **self.settings.client_options(),
                enable_auto_commit=False,
                isolation_level="read_committed",
                max_partition_fetch_bytes=4 * 1024 * 1024,
                fetch_max_wait_ms=50,
            )
            await self._reader.start()
        return self._reader
