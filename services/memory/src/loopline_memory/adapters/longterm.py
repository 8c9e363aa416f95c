"""Long-term memory, in memory's PostgreSQL schema.

Writes take the connection of the save's transaction, so they land with the run state they
belong to, or not at all; each is keyed so that a redelivered event writes nothing twice.
Recall is PostgreSQL full-text search ranked by `ts_rank`, always within one tenant and agent
profile: no query reaches another tenant's rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import asyncpg

from loopline_memory.domain import RunState, StoreMemory


class Recall(Protocol):
    """Finds the memories of a tenant's agent most relevant to a query, best first.

    `LongTermMemory` does it with full-text search. An embedding recall (pgvector, or any
    vector index) fits the same shape: embed the query, return the nearest memories' text.
    """

    async def recall(self, tenant: str, agent: str, query: str, limit: int) -> list[str]:
        """The `limit` most relevant memories' text."""
        ...


class LongTermMemory:
    """Memories of one schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool, self.schema = pool, schema

    async def recall(self, tenant: str, agent: str, query: str, limit: int) -> list[str]:
        """Memories of `tenant`'s `agent` sharing words with `query`, best ranked first."""
        # Any word of the query may match (OR), ranked by how well each memory matches all.
        rows = await self.pool.fetch(
            f"""
            SELECT m.content
            FROM "{self.schema}".memories m,
                 (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS q
                  FROM unnest(to_tsvector('english', $3))) words
            WHERE m.tenant = $1 AND m.agent = $2 AND words.q IS NOT NULL AND m.tsv @@ words.q
            ORDER BY ts_rank(m.tsv, words.q) DESC, m.id DESC
            LIMIT $4
            """,
            tenant,
            agent,
            query,
            limit,
        )
        return [r["content"] for r in rows]

    async def keep(
        self, conn: asyncpg.Connection, state: RunState, at: datetime, kept: Sequence[StoreMemory]
    ) -> None:
        """Store facts and episodes of the run (once each)."""
        await conn.executemany(
            f"""
            INSERT INTO "{self.schema}".memories (tenant, agent, kind, run_id, content, digest,
                created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
            """,
            [
                (state.tenant, state.agent, m.kind, state.run_id, m.content, _digest(m.content), at)
                for m in kept
            ],
        )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
