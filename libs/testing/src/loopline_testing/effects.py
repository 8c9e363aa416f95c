"""`record_effect`: a side-effecting tool that counts its own executions in PostgreSQL.

Every execution adds one to the row of its call, keyed by (run, call id), in the schema
`effects` of the process's namespace. A count above one is a side effect done twice: the
chaos suite reads the table to show that the executor's ledger runs each call exactly once,
whatever crashes and redeliveries happen around it.

The package offers the tool through the `loopline.tools` entry point, so a tool-executor
started from this workspace (tests, `make chaos`) runs it and memory shows it to the model.
It reads LOOPLINE_POSTGRES_DSN and LOOPLINE_KAFKA_TOPIC_PREFIX when first called, never at
import time, and LOOPLINE_TESTING_EFFECT_S: how long each effect takes (none by default), as a
slow side effect would, so runs are still under way when a fault strikes them.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from dataclasses import dataclass

import asyncpg
from loopline_events import ToolErrorKind
from loopline_runtime import POSTGRES_UNAVAILABLE, load_endpoints, open_schema, schema_name
from loopline_tools import Effect, RetryPolicy, Tool, ToolContext, ToolFailure, tool
from pydantic import BaseModel, Field

from loopline_testing.texts import long_text

PACE_VARIABLE = "LOOPLINE_TESTING_EFFECT_S"
"""Seconds each effect takes before it is recorded (the executor's environment)."""

SCHEMA = "effects"
"""Base name of the schema (namespaced like the services' own)."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {schema}.executions (
        run_id      text NOT NULL,
        call_id     text NOT NULL,
        label       text NOT NULL,
        count       integer NOT NULL,
        first_at    timestamptz NOT NULL DEFAULT now(),
        last_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, call_id)
    );
    """,
)


class RecordEffectArgs(BaseModel):
    """Arguments of `record_effect`."""

    label: str = Field(
        min_length=1, max_length=64, description="A name for the effect, e.g. `effect 1`."
    )


@dataclass(frozen=True)
class _Store:
    pool: asyncpg.Pool
    schema: str


_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[_Store]] = (
    weakref.WeakKeyDictionary()
)
"""One pool per event loop (a pool belongs to the loop that made it), opened on first use."""


async def _store() -> _Store:
    loop = asyncio.get_running_loop()
    task = _stores.get(loop)
    if task is None or (task.done() and task.exception() is not None):
        task = loop.create_task(_open())
        _stores[loop] = task
    # Shielded: a call cancelled by its timeout must not cancel the opening other calls await.
    return await asyncio.shield(task)


async def close_store() -> None:
    """Close this event loop's pool, if one was opened (the executor's lives as long as it)."""
    task = _stores.pop(asyncio.get_running_loop(), None)
    if task is not None and task.done() and task.exception() is None:
        await task.result().pool.close()


async def _open() -> _Store:
    endpoints = load_endpoints()
    pool, schema = await open_schema(endpoints, SCHEMA, MIGRATIONS, max_size=4)
    return _Store(pool, schema)


async def _reconcile(args: RecordEffectArgs, ctx: ToolContext) -> str | None:
    """After a crash between the ledger's start and finish: the row says whether it ran."""
    store = await _store()
    count = await store.pool.fetchval(
        f'SELECT count FROM "{store.schema}".executions WHERE run_id = $1 AND call_id = $2',
        ctx.run_id,
        ctx.call_id,
    )
    return None if count is None else _output(args)


@tool(
    name="record_effect",
    effect=Effect.SIDE_EFFECT,
    # PostgreSQL restarting takes seconds: a refused connection did nothing, so wait it out
    # (up to about 20 s on average: the waits are jittered).
    retry=RetryPolicy(max_attempts=12, initial_backoff_s=0.5, max_backoff_s=4.0),
    reconcile=_reconcile,
)
async def record_effect(args: RecordEffectArgs, ctx: ToolContext) -> str:
    """Record a side effect with a label (each call records one); returns what it recorded."""
    await asyncio.sleep(float(os.environ.get(PACE_VARIABLE) or 0))
    try:
        store = await _store()
        await store.pool.execute(
            f"""
            INSERT INTO "{store.schema}".executions (run_id, call_id, label, count)
            VALUES ($1, $2, $3, 1)
            ON CONFLICT (run_id, call_id) DO UPDATE
                SET count = executions.count + 1, last_at = now()
            """,
            ctx.run_id,
            ctx.call_id,
            args.label,
        )
    except asyncpg.ConnectionDoesNotExistError as exc:
        # Lost mid-statement: it may have committed. Never retried blind (that could count
        # twice); the run is told the truth.
        raise ToolFailure(
            ToolErrorKind.UNKNOWN_OUTCOME,
            f"the connection to the effects store was lost mid-call ({exc!r}); "
            "the effect may or may not be recorded",
        ) from exc
    except POSTGRES_UNAVAILABLE as exc:
        # Refused or aborted before it committed: nothing happened, so trying again is safe.
        raise ToolFailure(
            ToolErrorKind.EXECUTION, f"the effects store is unavailable: {exc!r}", retryable=True
        ) from exc
    return _output(args)


def _output(args: RecordEffectArgs) -> str:
    return f"recorded {args.label}"


def tools() -> tuple[Tool, ...]:
    """What the `loopline.tools` entry point offers: this and `long_text`."""
    return (record_effect, long_text)


@dataclass(frozen=True)
class EffectCounts:
    """What the effects table holds: executions per call."""

    calls: dict[tuple[str, str], int]
    """(run id, call id) -> times executed."""

    @property
    def duplicates(self) -> dict[tuple[str, str], int]:
        """Calls executed more than once."""
        return {k: n for k, n in self.calls.items() if n > 1}


async def read_effect_counts(dsn: str, namespace: str) -> EffectCounts:
    """The executions recorded in `namespace` (empty if no call ever ran)."""
    schema = schema_name(SCHEMA, namespace)
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".executions')
        if exists is None:
            return EffectCounts({})
        rows = await conn.fetch(f'SELECT run_id, call_id, count FROM "{schema}".executions')
    finally:
        await conn.close()
    return EffectCounts({(r["run_id"], r["call_id"]): r["count"] for r in rows})
