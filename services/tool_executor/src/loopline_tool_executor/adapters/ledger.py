"""The tool-call ledger in PostgreSQL: side-effecting calls recorded as started, then finished."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from loopline_runtime import POSTGRES_UNAVAILABLE, PostgresUnavailableError

from loopline_tool_executor.domain import Claim, Outcome, Prior, outcome_record

T = TypeVar("T")


class LedgerUnavailable(PostgresUnavailableError):  # noqa: N818 - a condition, retried
    """PostgreSQL could not be reached; retrying the decision later can succeed."""


class ToolLedger:
    """One row per side-effecting call, keyed by (run, step, call)."""

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool, self.schema = pool, schema

    async def claim(self, run_id: str, seq: int, call_id: str, tool: str) -> Claim:
        """Record the call as started, unless the ledger already holds it: then what it holds."""

        async def claim(conn: asyncpg.Connection) -> Claim:
            inserted = await conn.fetchval(
                f'INSERT INTO "{self.schema}".tool_calls (run_id, seq, call_id, tool) '
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                run_id,
                seq,
                call_id,
                tool,
            )
            if inserted:
                return Claim(Prior.NEW)
            outcome = await conn.fetchval(
                f'SELECT outcome FROM "{self.schema}".tool_calls '
                "WHERE run_id = $1 AND seq = $2 AND call_id = $3",
                run_id,
                seq,
                call_id,
            )
            if outcome is None:
                return Claim(Prior.STARTED)
            return Claim(Prior.FINISHED, json.loads(outcome))

        return await self._with_connection(claim)

    async def finish(self, run_id: str, seq: int, call_id: str, outcome: Outcome) -> None:
        """Record the call's outcome."""

        async def finish(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f'UPDATE "{self.schema}".tool_calls SET finished_at = now(), '
                "outcome = $4::jsonb WHERE run_id = $1 AND seq = $2 AND call_id = $3",
                run_id,
                seq,
                call_id,
                json.dumps(outcome_record(outcome)),
            )

        await self._with_connection(finish)

    async def _with_connection(self, use: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        try:
            async with self.pool.acquire() as conn:
                return await use(conn)
        except POSTGRES_UNAVAILABLE as exc:
            raise LedgerUnavailable(f"tool ledger unavailable: {exc!r}") from exc
