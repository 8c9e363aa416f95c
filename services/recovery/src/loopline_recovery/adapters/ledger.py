"""The dead-letter ledger in PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import Any

import asyncpg
from loopline_events import DeadLettered, Envelope


class DeadLetterLedger:
    """Records dead letters once each (a redelivered one is recognised by its source offset)."""

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool, self.schema = pool, schema

    async def record(self, event: Envelope[Any], letter: DeadLettered) -> bool:
        """Record `letter`; whether it was new."""
        headers = json.dumps(
            [[k, base64.b64encode(v).decode()] for k, v in letter.original_headers]
        )
        status = await self.pool.execute(
            f"""
            INSERT INTO "{self.schema}".dead_letters (event_id, run_id, source_topic,
                source_partition, source_offset, consumer_group, kind, error, event_type,
                attempts, original_key, original_value, original_headers, occurred_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
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
        )
        return bool(status.endswith(" 1"))
