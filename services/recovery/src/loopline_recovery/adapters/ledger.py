"""The dead-letter ledger in PostgreSQL: every dead letter, its verdict, and the runs failed."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from loopline_events import DeadLettered, Envelope, FailureReason
from loopline_runtime import postgres_unavailable_is_retryable

from loopline_recovery.domain import Verdict


class DeadLetterLedger:
    """Records dead letters once each (a redelivered one is recognised by its source offset)."""

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool, self.schema = pool, schema

    async def record(self, event: Envelope[Any], letter: DeadLettered, verdict: Verdict) -> bool:
        """Record `letter` with its verdict (`retrying` or `parked`); whether it was new."""
        headers = json.dumps(
            [[k, base64.b64encode(v).decode()] for k, v in letter.original_headers]
        )
        with postgres_unavailable_is_retryable("the dead-letter ledger"):
            status = await self.pool.execute(
                f"""
                INSERT INTO "{self.schema}".dead_letters (event_id, run_id, source_topic,
                    source_partition, source_offset, consumer_group, kind, error, event_type,
                    attempts, original_key, original_value, original_headers, occurred_at,
                    status, category, retries)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15,
                    $16, $17)
                ON CONFLICT DO NOTHING
                """,
                event.event_id,
                event.run_id,
                letter.source_topic,
                letter.partition,
                letter.offset,
                letter.consumer_group,
                letter.kind.value,
                letter.error,
                letter.event_type,
                letter.attempts,
                letter.original_key,
                letter.original_value,
                headers,
                event.occurred_at,
                "retrying" if verdict.retry_topic else "parked",
                verdict.category.value,
                verdict.retries,
            )
        return bool(status.endswith(" 1"))

    async def fail_run(self, run_id: str, reason: FailureReason, cause: UUID) -> bool:
        """Mark the run failed by the dead letter `cause`, unless another one failed it first.

        True when `cause` is the run's failure (also when asked again for the same cause: a
        redelivered dead letter must re-publish the same RunFailed, not drop it).
        """
        with postgres_unavailable_is_retryable("the dead-letter ledger"):
            recorded = await self.pool.fetchval(
                f"""
                INSERT INTO "{self.schema}".failed_runs (run_id, reason, cause) VALUES ($1, $2, $3)
                ON CONFLICT (run_id) DO UPDATE SET run_id = EXCLUDED.run_id
                RETURNING cause
                """,
                run_id,
                reason.value,
                cause,
            )
        return bool(recorded == cause)


@dataclass(frozen=True)
class Parked:
    """A parked dead letter's original message: what a redrive re-publishes."""

    source_topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class RedriveLedger:
    """The ledger as a redrive sees it: a parked letter's message, and marking it redriven."""

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool, self.schema = pool, schema

    async def parked(self, event_id: UUID) -> Parked | None:
        """The letter's original message while it is parked; None otherwise."""
        with postgres_unavailable_is_retryable("the dead-letter ledger"):
            row = await self.pool.fetchrow(
                f"""
                SELECT source_topic, original_key, original_value, original_headers
                FROM "{self.schema}".dead_letters WHERE event_id = $1 AND status = 'parked'
                """,
                event_id,
            )
        if row is None:
            return None
        stored = row["original_headers"]
        pairs = json.loads(stored) if isinstance(stored, str) else stored
        headers = tuple((k, base64.b64decode(v)) for k, v in pairs)
        return Parked(row["source_topic"], row["original_key"], row["original_value"], headers)

    async def mark_redriven(self, event_id: UUID) -> None:
        """The letter was re-published."""
        with postgres_unavailable_is_retryable("the dead-letter ledger"):
            await self.pool.execute(
                f"""
                UPDATE "{self.schema}".dead_letters SET status = 'redriven', redriven_at = now()
                WHERE event_id = $1 AND status = 'parked'
                """,
                event_id,
            )
