"""Long-term memory and stored tool outputs, in memory's PostgreSQL schema.

Writes take the connection of the save's transaction, so they land with the run state they
belong to, or not at all; each is keyed so that a redelivered event writes nothing twice.
Recall is PostgreSQL full-text search ranked by `ts_rank`, always within one tenant and agent
profile: no query reaches another tenant's rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import asyncpg
from loopline_events import Envelope, ToolCallSucceeded

from loopline_memory.domain import RunState, StoreMemory
from loopline_memory.domain.window import ARTIFACT_THRESHOLD, artifact_ref


class Recall(Protocol):
    """Finds the memories of a tenant's agent most relevant to a query, best first.

    `LongTermMemory` does it with full-text search. An embedding recall (pgvector, or any
    vector index) fits the same shape: embed the query, return the nearest memories' text.
    """

    async def recall(self, tenant: str, agent: str, query: str, limit: int) -> list[str]:
        """The `limit` most relevant memories' text."""
        ...


class LongTermMemory:
    """Memories, ledger and artifacts of one schema."""

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

    async def record(self, conn: asyncpg.Connection, state: RunState, event: Envelope[Any]) -> None:
        """Store the whole output of a tool result too large for the context (once)."""
        payload = event.payload
        if not keeps_artifact(event):
            return
        assert isinstance(payload, ToolCallSucceeded)
        await conn.execute(
            f"""
            INSERT INTO "{self.schema}".artifacts (ref, run_id, chars, content, created_at)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
            """,
            artifact_ref(payload.output),
            state.run_id,
            len(payload.output),
            payload.output,
            event.occurred_at,
        )

    async def artifact(self, ref: str) -> str | None:
        """The whole tool output stored under `ref` (`sha256:...`), if there is one."""
        content: str | None = await self.pool.fetchval(
            f'SELECT content FROM "{self.schema}".artifacts WHERE ref = $1', ref
        )
        return content


def keeps_artifact(event: Envelope[Any]) -> bool:
    """Whether `event` is a tool result whose whole output is stored as an artifact."""
    payload = event.payload
    return isinstance(payload, ToolCallSucceeded) and len(payload.output) > ARTIFACT_THRESHOLD


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
