"""Memory's read API: what others (CLI, SDK, gateway) may know of runs, without touching
memory's tables themselves.

Each function takes a connection to PostgreSQL and the namespace's schema, and answers from
the projections memory keeps (runs, their timelines). A schema memory never created (it has
not run yet in this namespace) reads as empty.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class RunRow:
    """A run as the runs list shows it."""

    run_id: str
    tenant: str
    agent: str
    status: str
    reason: str | None
    steps: int
    goal: str
    answer: str | None
    tokens: int
    started_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RunSummary:
    """A run's header: its row and the limits it runs under."""

    row: RunRow
    limits: dict[str, Any]
    capped: tuple[str, ...]
    """Limits its goal asked beyond its profile's, capped to them."""


@dataclass(frozen=True)
class TimelineEntry:
    """One event memory recorded of a run."""

    seq: int
    type: str
    producer: str
    occurred_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class UsageEntry:
    """One model decision in the usage ledger: its tokens and what they cost."""

    seq: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    """Of the tokens read, those served from the provider's prompt cache."""
    cache_write_tokens: int
    """Of the tokens read, those written to it."""
    cost_usd: float
    """Each kind of token at its price (price table)."""
    occurred_at: datetime


_RUN_COLUMNS = (
    "run_id, tenant, agent, status, reason, steps, goal, answer, "
    "prompt_tokens + completion_tokens AS tokens, started_at, updated_at"
)


async def list_runs(
    conn: asyncpg.Connection,
    schema: str,
    *,
    limit: int = 20,
    tenant: str | None = None,
    status: str | None = None,
) -> list[RunRow]:
    """The latest runs, newest first."""
    rows = await _fetch(
        conn,
        f"SELECT {_RUN_COLUMNS} FROM {{schema}}.runs "
        "WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR status = $2) "
        "ORDER BY started_at DESC LIMIT $3",
        schema,
        tenant,
        status,
        limit,
    )
    return [RunRow(**dict(r)) for r in rows]


async def summary(conn: asyncpg.Connection, schema: str, run_id: str) -> RunSummary | None:
    """A run's row and limits; None if memory has no such run."""
    rows = await _fetch(
        conn,
        f"SELECT {_RUN_COLUMNS}, state->'max_steps' AS max_steps, "
        "state->'deadline_at' AS deadline_at, state->'max_tokens' AS max_tokens, "
        "state->'max_cost_usd' AS max_cost_usd, state->'capped' AS capped "
        "FROM {schema}.runs WHERE run_id = $1",
        schema,
        run_id,
    )
    if not rows:
        return None
    found = dict(rows[0])
    limits = {
        name: json.loads(found.pop(name)) if found[name] is not None else None
        for name in ("max_steps", "deadline_at", "max_tokens", "max_cost_usd")
    }
    capped = found.pop("capped")
    return RunSummary(RunRow(**found), limits, tuple(json.loads(capped)) if capped else ())


async def timeline(conn: asyncpg.Connection, schema: str, run_id: str) -> list[TimelineEntry]:
    """Every event memory recorded of the run, in order."""
    rows = await _fetch(
        conn,
        "SELECT seq, type, producer, occurred_at, payload FROM {schema}.events "
        "WHERE run_id = $1 ORDER BY occurred_at, seq",
        schema,
        run_id,
    )
    return [TimelineEntry(**{**dict(r), "payload": json.loads(r["payload"])}) for r in rows]


async def usage(conn: asyncpg.Connection, schema: str, run_id: str) -> list[UsageEntry]:
    """The run's rows of the usage ledger, step by step."""
    rows = await _fetch(
        conn,
        "SELECT seq, model, prompt_tokens, completion_tokens, cached_tokens, "
        "cache_write_tokens, cost_usd::float8 AS cost_usd, occurred_at "
        "FROM {schema}.usage WHERE run_id = $1 ORDER BY seq",
        schema,
        run_id,
    )
    return [UsageEntry(**dict(r)) for r in rows]


async def _fetch(
    conn: asyncpg.Connection, sql: str, schema: str, *args: Any
) -> Sequence[asyncpg.Record]:
    try:
        return list(await conn.fetch(sql.replace("{schema}", f'"{schema}"'), *args))
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return []
