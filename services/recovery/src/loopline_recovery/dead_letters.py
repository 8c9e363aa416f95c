"""Recovery's public API over its dead letters: what others (CLI, gateway) may read of them,
and how they ask for a redrive, without touching recovery's tables themselves.

Reads take a connection to PostgreSQL and the namespace's schema, and answer from recovery's
ledger; a schema recovery never created reads as empty. A redrive is a command recovery
carries out (`RedriveDeadLetter` on agent.operations): recovery alone writes its ledger.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from loopline_bus import Bus, Outbound
from loopline_events import OPERATIONS, Envelope, RedriveDeadLetter

STATUSES = ("retrying", "parked", "redriven")
"""A dead letter is `retrying` (waiting in a retry tier), `parked` (until an operator acts)
or `redriven` (re-published by an operator's request)."""


@dataclass(frozen=True)
class DeadLetterRow:
    """A dead letter as the list shows it."""

    event_id: uuid.UUID
    run_id: str
    source_topic: str
    consumer_group: str
    kind: str
    category: str | None
    error: str
    status: str
    occurred_at: datetime
    redriven_at: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter whole: where it came from, why, and the original message."""

    row: DeadLetterRow
    source_partition: int
    source_offset: int
    event_type: str | None
    attempts: int
    retries: int
    original_key: bytes | None
    original_value: bytes
    original_headers: tuple[tuple[str, bytes], ...]
    recorded_at: datetime

    def as_json(self) -> dict[str, Any]:
        """Its fields as JSON values, bytes in base64."""
        return {
            **{k: _jsonable(v) for k, v in self.row.__dict__.items()},
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "event_type": self.event_type,
            "attempts": self.attempts,
            "retries": self.retries,
            "original_key": _jsonable(self.original_key),
            "original_value": _jsonable(self.original_value),
            "original_headers": [[k, _jsonable(v)] for k, v in self.original_headers],
            "recorded_at": _jsonable(self.recorded_at),
        }


_ROW = (
    "event_id, run_id, source_topic, consumer_group, kind, category, error, status, "
    "occurred_at, redriven_at"
)


async def list_dead_letters(
    conn: asyncpg.Connection,
    schema: str,
    *,
    run_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[DeadLetterRow]:
    """The latest dead letters (of a run, in a status), newest first."""
    rows = await _fetch(
        conn,
        f"SELECT {_ROW} FROM {{schema}}.dead_letters "
        "WHERE ($1::text IS NULL OR run_id = $1) AND ($2::text IS NULL OR status = $2) "
        "ORDER BY occurred_at DESC, event_id LIMIT $3",
        schema,
        run_id,
        status,
        limit,
    )
    return [DeadLetterRow(**dict(r)) for r in rows]


async def find(
    conn: asyncpg.Connection, schema: str, id_or_prefix: str, *, limit: int = 10
) -> list[DeadLetter]:
    """The dead letters whose id is, or starts with, `id_or_prefix` (hex digits and dashes)."""
    prefix = id_or_prefix.lower()
    if not prefix or any(c not in "0123456789abcdef-" for c in prefix):
        return []
    rows = await _fetch(
        conn,
        f"SELECT {_ROW}, source_partition, source_offset, event_type, attempts, retries, "
        "original_key, original_value, original_headers, recorded_at "
        "FROM {schema}.dead_letters WHERE event_id::text LIKE $1 || '%' "
        "ORDER BY occurred_at DESC LIMIT $2",
        schema,
        prefix,
        limit,
    )
    return [_whole(r) for r in rows]


async def parked(
    conn: asyncpg.Connection,
    schema: str,
    *,
    id_or_prefix: str | None = None,
    run_id: str | None = None,
) -> list[DeadLetterRow]:
    """The parked dead letters matching an id (or a prefix of one) or a run, oldest first:
    what a redrive would re-publish."""
    if id_or_prefix is not None:
        found = await find(conn, schema, id_or_prefix, limit=1000)
        return [d.row for d in reversed(found) if d.row.status == "parked"]
    rows = await _fetch(
        conn,
        f"SELECT {_ROW} FROM {{schema}}.dead_letters WHERE status = 'parked' AND run_id = $1 "
        "ORDER BY source_offset",
        schema,
        run_id,
    )
    return [DeadLetterRow(**dict(r)) for r in rows]


async def statuses(
    conn: asyncpg.Connection, schema: str, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The status of each of these dead letters (those recovery knows)."""
    rows = await _fetch(
        conn,
        "SELECT event_id, status FROM {schema}.dead_letters WHERE event_id = ANY($1::uuid[])",
        schema,
        list(event_ids),
    )
    return {r["event_id"]: r["status"] for r in rows}


def redrive_command(
    letter: DeadLetterRow, *, requested_by: str, tenant: str = "default"
) -> Envelope[RedriveDeadLetter]:
    """The command asking recovery to redrive `letter`."""
    command = RedriveDeadLetter(dead_letter_id=letter.event_id, requested_by=requested_by)
    return Envelope.of(command, run_id=letter.run_id, tenant=tenant, producer=requested_by)


async def request_redrive(
    bus: Bus,
    letters: Sequence[DeadLetterRow],
    *,
    requested_by: str,
    tenant: str = "default",
) -> list[Envelope[RedriveDeadLetter]]:
    """Ask recovery to redrive `letters` (parked ones are re-published, others left as they
    are); the commands sent. Recovery carries them out within moments: the letters' status
    turns to `redriven`."""
    commands = [redrive_command(d, requested_by=requested_by, tenant=tenant) for d in letters]
    await bus.publish_many([Outbound(OPERATIONS.name, c) for c in commands])
    return commands


def _whole(record: asyncpg.Record) -> DeadLetter:
    found = dict(record)
    extra = {
        name: found.pop(name)
        for name in (
            "source_partition",
            "source_offset",
            "event_type",
            "attempts",
            "retries",
            "original_key",
            "original_value",
            "original_headers",
            "recorded_at",
        )
    }
    stored = extra["original_headers"]
    pairs = json.loads(stored) if isinstance(stored, str) else stored
    extra["original_headers"] = tuple((k, base64.b64decode(v)) for k, v in pairs)
    return DeadLetter(row=DeadLetterRow(**found), **extra)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime | uuid.UUID):
        return str(value)
    return value


async def _fetch(
    conn: asyncpg.Connection, sql: str, schema: str, *args: Any
) -> Sequence[asyncpg.Record]:
    try:
        return list(await conn.fetch(sql.replace("{schema}", f'"{schema}"'), *args))
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return []
