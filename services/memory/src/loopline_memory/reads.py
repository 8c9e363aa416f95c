"""Memory's read API: what others (CLI, SDK, gateway) may know of runs, without touching
memory's tables themselves.

Each function takes a connection to PostgreSQL and the namespace's schema, and answers from
the projections memory keeps (runs, their timelines, the usage ledger). A schema memory never
created (it has not run yet in this namespace) reads as empty.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from loopline_memory.steps import StepDetail, ToolCallDetail, steps_of

__all__ = [
    "Approval",
    "RunRow",
    "RunSummary",
    "StepDetail",
    "TimelineEntry",
    "ToolCallDetail",
    "approval",
    "first_recorded",
    "list_runs",
    "pending_approvals",
    "steps",
    "summary",
    "tenant_of",
    "timeline",
]

STATUSES = ("running", "completed", "failed", "cancelled")


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
    parent_run_id: str | None = None
    """The run whose sub-task this is (its `delegate` call started it), if any."""


@dataclass(frozen=True)
class RunSummary:
    """A run's header: its row, the limits it runs under, what it spent and how it ended."""

    row: RunRow
    limits: dict[str, Any]
    capped: tuple[str, ...]
    """Limits its goal asked beyond its profile's, capped to them."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    """What its model calls cost (memory's usage ledger)."""
    message: str = ""
    """Why it failed, for a human (empty unless it failed)."""
    model: str = ""
    children: tuple[dict[str, Any], ...] = ()
    """Its sub-tasks: each child run's id, agent, step and whether it ended."""


@dataclass(frozen=True)
class TimelineEntry:
    """One event memory recorded of a run."""

    seq: int
    type: str
    producer: str
    occurred_at: datetime
    payload: dict[str, Any]
    event_id: uuid.UUID | None = None
    topic: str = ""


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
    "prompt_tokens + completion_tokens AS tokens, started_at, updated_at, "
    "state->'delegated_by'->>'parent_run_id' AS parent_run_id"
)


async def list_runs(
    conn: asyncpg.Connection,
    schema: str,
    *,
    limit: int = 20,
    tenant: str | None = None,
    status: str | None = None,
    agent: str | None = None,
    before: datetime | None = None,
) -> list[RunRow]:
    """The latest runs (started before `before`, when given), newest first."""
    rows = await _fetch(
        conn,
        f"SELECT {_RUN_COLUMNS} FROM {{schema}}.runs "
        "WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR status = $2) "
        "AND ($3::text IS NULL OR agent = $3) "
        "AND ($4::timestamptz IS NULL OR started_at < $4) "
        "ORDER BY started_at DESC, run_id LIMIT $5",
        schema,
        tenant,
        status,
        agent,
        before,
        limit,
    )
    return [RunRow(**dict(r)) for r in rows]


async def tenant_of(conn: asyncpg.Connection, schema: str, run_id: str) -> str | None:
    """The run's tenant; None if memory has no such run."""
    rows = await _fetch(conn, "SELECT tenant FROM {schema}.runs WHERE run_id = $1", schema, run_id)
    return str(rows[0]["tenant"]) if rows else None


async def first_recorded(conn: asyncpg.Connection, schema: str, run_id: str) -> datetime | None:
    """When the earliest event memory recorded of the run happened; None if it has none."""
    rows = await _fetch(
        conn, "SELECT min(occurred_at) AS t FROM {schema}.events WHERE run_id = $1", schema, run_id
    )
    value = rows[0]["t"] if rows else None
    return value if isinstance(value, datetime) else None


async def summary(conn: asyncpg.Connection, schema: str, run_id: str) -> RunSummary | None:
    """A run's row, limits, usage and outcome; None if memory has no such run."""
    rows = await _fetch(
        conn,
        f"SELECT {_RUN_COLUMNS}, prompt_tokens, completion_tokens, "
        "state->'max_steps' AS max_steps, state->'deadline_at' AS deadline_at, "
        "state->'max_tokens' AS max_tokens, state->'max_cost_usd' AS max_cost_usd, "
        "state->'capped' AS capped, state->>'failure_message' AS message, "
        "state->>'model' AS model, state->'children' AS children, "
        "(SELECT coalesce(sum(cost_usd), 0) FROM {schema}.usage u WHERE u.run_id = r.run_id) "
        "AS cost_usd "
        "FROM {schema}.runs r WHERE run_id = $1",
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
    capped_limits = tuple(json.loads(capped)) if capped else ()
    children = found.pop("children")
    return RunSummary(
        RunRow(**{k: v for k, v in found.items() if k not in _SUMMARY_EXTRA}),
        limits,
        capped_limits,
        prompt_tokens=int(found["prompt_tokens"]),
        completion_tokens=int(found["completion_tokens"]),
        cost_usd=float(found["cost_usd"]),
        message=found["message"] or "",
        model=found["model"] or "",
        children=tuple(json.loads(children)) if children else (),
    )


_SUMMARY_EXTRA = frozenset({"prompt_tokens", "completion_tokens", "cost_usd", "message", "model"})


async def timeline(conn: asyncpg.Connection, schema: str, run_id: str) -> list[TimelineEntry]:
    """Every event memory recorded of the run, in order."""
    rows = await _fetch(
        conn,
        "SELECT seq, type, producer, occurred_at, payload, event_id, topic FROM {schema}.events "
        "WHERE run_id = $1 ORDER BY occurred_at, seq",
        schema,
        run_id,
    )
    return [TimelineEntry(**{**dict(r), "payload": json.loads(r["payload"])}) for r in rows]


async def steps(conn: asyncpg.Connection, schema: str, run_id: str) -> list[StepDetail]:
    """The run step by step: each step's context, decision, tool calls and their outcomes,
    tokens, cost and durations (from its timeline and the usage ledger)."""
    entries = await timeline(conn, schema, run_id)
    costs = await _fetch(
        conn, "SELECT event_id, cost_usd FROM {schema}.usage WHERE run_id = $1", schema, run_id
    )
    return steps_of(entries, {r["event_id"]: float(r["cost_usd"]) for r in costs})


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


@dataclass(frozen=True)
class TreeSpend:
    """What one run of a run's tree (itself, its sub-tasks, theirs) spent on its own model
    calls, by the usage ledger."""

    run_id: str
    parent_run_id: str | None
    depth: int
    agent: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


async def spend_tree(conn: asyncpg.Connection, schema: str, run_id: str) -> list[TreeSpend]:
    """The usage ledger of `run_id` and of its sub-tasks under it, each run's own calls: the
    run first, then its children, found through each state's list of them (by key)."""
    rows = await _fetch(
        conn,
        """
        WITH RECURSIVE tree(run_id, parent_run_id, depth) AS (
            SELECT run_id, NULL::text, 0 FROM {schema}.runs WHERE run_id = $1
            UNION ALL
            SELECT child.run_id, t.run_id, t.depth + 1
            FROM tree t
            JOIN {schema}.runs p ON p.run_id = t.run_id
            CROSS JOIN LATERAL jsonb_array_elements(
                coalesce(p.state->'children', '[]'::jsonb)) AS c(entry)
            JOIN {schema}.runs child ON child.run_id = c.entry->>'run_id'
            WHERE t.depth < 10
        )
        SELECT t.run_id, t.parent_run_id, t.depth, r.agent,
            coalesce(sum(u.prompt_tokens), 0) AS prompt_tokens,
            coalesce(sum(u.completion_tokens), 0) AS completion_tokens,
            coalesce(sum(u.cost_usd), 0) AS cost_usd
        FROM tree t
        JOIN {schema}.runs r ON r.run_id = t.run_id
        LEFT JOIN {schema}.usage u ON u.run_id = t.run_id
        GROUP BY t.run_id, t.parent_run_id, t.depth, r.agent
        ORDER BY t.depth, min(r.started_at), t.run_id
        """,
        schema,
        run_id,
    )
    return [
        TreeSpend(
            run_id=r["run_id"],
            parent_run_id=r["parent_run_id"],
            depth=r["depth"],
            agent=r["agent"],
            prompt_tokens=int(r["prompt_tokens"]),
            completion_tokens=int(r["completion_tokens"]),
            cost_usd=float(r["cost_usd"]),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Approval:
    """A held tool call: waiting for a person's approval, or decided."""

    run_id: str
    tenant: str
    agent: str
    run_status: str
    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    policy: str
    approvers: tuple[str, ...]
    until: datetime
    on_timeout: str
    requested_at: datetime
    decision: dict[str, Any] | None = None
    """Once decided: `approved`, `decided_by`, `reason`, `decided_at`."""

    @property
    def pending(self) -> bool:
        return self.decision is None and self.run_status == "running"


async def pending_approvals(
    conn: asyncpg.Connection, schema: str, *, tenant: str | None = None, limit: int = 100
) -> list[Approval]:
    """Held calls of running runs (of `tenant`, when given), the longest waiting first."""
    rows = await _fetch(
        conn,
        "SELECT run_id, tenant, agent, status, h.entry AS held "
        "FROM {schema}.runs, jsonb_array_elements(coalesce(state->'held', '[]'::jsonb)) "
        "AS h(entry) "
        "WHERE status = 'running' AND ($1::text IS NULL OR tenant = $1) "
        "ORDER BY h.entry->>'requested_at', run_id LIMIT $2",
        schema,
        tenant,
        limit,
    )
    return [_approval(r, json.loads(r["held"])) for r in rows]


async def approval(
    conn: asyncpg.Connection, schema: str, run_id: str, call_id: str
) -> Approval | None:
    """The held call `call_id` of `run_id`, pending or decided; None if it never was held
    (or memory has no such run)."""
    rows = await _fetch(
        conn,
        "SELECT run_id, tenant, agent, status, state->'held' AS held, "
        "state->'decided' AS decided "
        "FROM {schema}.runs WHERE run_id = $1",
        schema,
        run_id,
    )
    if not rows:
        return None
    row = rows[0]
    held = {h["call_id"]: h for h in json.loads(row["held"] or "[]")}
    # A decided call's id is its request's (DecidedCall.call_id is a property: not stored).
    decided = {d["request"]["call_id"]: d for d in json.loads(row["decided"] or "[]")}
    if call_id in held:
        return _approval(row, held[call_id])
    if call_id in decided:
        d = decided[call_id]
        decision = {k: d.get(k) for k in ("approved", "decided_by", "reason", "decided_at")}
        return _approval(row, d["request"], decision)
    return None


def _approval(
    row: asyncpg.Record, held: dict[str, Any], decision: dict[str, Any] | None = None
) -> Approval:
    return Approval(
        run_id=row["run_id"],
        tenant=row["tenant"],
        agent=row["agent"],
        run_status=row["status"],
        step=int(held["step"]),
        call_id=held["call_id"],
        tool=held["tool"],
        arguments=held.get("arguments") or {},
        policy=held.get("policy") or "",
        approvers=tuple(held.get("approvers") or ()),
        until=datetime.fromisoformat(held["until"]),
        on_timeout=held.get("on_timeout") or "deny",
        requested_at=datetime.fromisoformat(held["requested_at"]),
        decision=decision,
    )
