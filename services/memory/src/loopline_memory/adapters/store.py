"""Where run state lives: Redis for the hot copy, PostgreSQL for the durable one.

Every save writes PostgreSQL first (the run row with its state, and the run's new events, in one
transaction), then Redis. A load reads Redis and falls back to PostgreSQL, so losing Redis
loses nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from loopline_bus import Outbound
from loopline_events import ContextAssembled, Envelope, ModelDecided, Payload, topic_of
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from loopline_memory.domain import RunState
from loopline_memory.domain.budgets import decision_price

OUTBOX_SIZE = 8
"""How many recent inputs keep their outputs, to re-emit them if the input is redelivered."""

HOT_TTL_S = 24 * 3600
"""How long a run's hot state stays in Redis after its last change."""

Write = Callable[[asyncpg.Connection], Awaitable[None]]
"""More rows to write in a save's transaction (ledger, memories, artifacts)."""


class Sent(BaseModel):
    """An event memory emitted, kept verbatim so a redelivered cause re-emits it identically."""

    model_config = ConfigDict(frozen=True)

    cause: str = Field(description="Event id of the input that caused it.")
    topic: str
    event: str = Field(description="The emitted event, encoded.")


class StoredRun(BaseModel):
    """A run's state and the outputs of its latest inputs."""

    model_config = ConfigDict(frozen=True)

    state: RunState
    outbox: tuple[Sent, ...] = ()


@dataclass(frozen=True, slots=True)
class Pending:
    """What one input did to its run, waiting to be saved."""

    stored: StoredRun
    consumed: Envelope[Any]
    emitted: Sequence[Outbound]
    writes: Sequence[Write] = ()


def _timeline_payload(event: Envelope[Any]) -> str:
    """What the events table keeps of an event: all of it, except a context's full history."""
    payload: Payload = event.payload
    if isinstance(payload, ContextAssembled):
        return json.dumps(
            {"messages": len(payload.messages), "tools": [t.name for t in payload.tools]}
        )
    return payload.model_dump_json()


def _topic_of(event: Envelope[Any]) -> str:
    spec = topic_of(event.type)
    return spec.name if spec else ""


class RunStore:
    """Loads and saves runs."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, schema: str, key_prefix: str):
        self.pool, self.redis, self.schema = pool, redis, schema
        self.key_prefix = f"{key_prefix}loopline:run:"

    def _key(self, run_id: str) -> str:
        return self.key_prefix + run_id

    async def load(self, run_id: str) -> StoredRun | None:
        hot = await self.redis.get(self._key(run_id))
        if hot is not None:
            return StoredRun.model_validate_json(hot)
        row = await self.pool.fetchrow(
            f'SELECT state, outbox FROM "{self.schema}".runs WHERE run_id = $1', run_id
        )
        if row is None:
            return None
        return StoredRun(
            state=RunState.model_validate_json(row["state"]),
            outbox=tuple(Sent.model_validate(s) for s in json.loads(row["outbox"])),
        )

    async def forget(self, run_ids: Sequence[str]) -> None:
        """Delete these runs' projections: rows, timeline, usage ledger and hot copies."""
        async with self.pool.acquire() as conn, conn.transaction():
            for table in ("events", "usage", "runs"):
                await conn.execute(
                    f'DELETE FROM "{self.schema}".{table} WHERE run_id = ANY($1::text[])',
                    list(run_ids),
                )
        for start in range(0, len(run_ids), 500):
            keys = [self._key(r) for r in run_ids[start : start + 500]]
            if keys:
                await self.redis.delete(*keys)

    async def save(
        self,
        stored: StoredRun,
        consumed: Envelope[Any],
        emitted: Sequence[Outbound],
        writes: Sequence[Write] = (),
    ) -> None:
        """Save the run, its new events and `writes` in one transaction; then the hot copy."""
        await self.save_many([Pending(stored, consumed, emitted, writes)])

    async def save_many(self, pending: Sequence[Pending]) -> None:
        """Save what several inputs did, then the hot copies: a run saved more than once keeps
        its last state; every event, ledger row and write is kept, in order.

        Runs, timeline and usage ledger go in one statement (atomic on its own: one round trip
        and one commit for a whole batch); the rare other writes join it in a transaction.
        """
        if not pending:
            return
        latest = {p.stored.state.run_id: p.stored for p in pending}
        encoded = {run_id: _encode(stored) for run_id, stored in sorted(latest.items())}
        runs = [_run_row(latest[run_id].state, *texts) for run_id, texts in encoded.items()]
        events = [row for p in pending for row in _timeline_rows(p.consumed, p.emitted)]
        usage = [row for p in pending if (row := _usage_row(p.stored.state, p.consumed))]
        writes = [write for p in pending for write in p.writes]
        columns = [*_columns(runs, 14), *_columns(events, 8), *_columns(usage, 12)]
        async with self.pool.acquire() as conn:
            if writes:
                async with conn.transaction():
                    await conn.execute(self._save_sql, *columns)
                    for write in writes:
                        await write(conn)
            else:
                await conn.execute(self._save_sql, *columns)
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id, (state, outbox) in encoded.items():
                # The JSON of StoredRun, put together from the texts PostgreSQL got.
                pipe.set(self._key(run_id), f'{{"state":{state},"outbox":{outbox}}}', ex=HOT_TTL_S)
            await pipe.execute()

    @functools.cached_property
    def _save_sql(self) -> str:
        schema = self.schema
        return f"""
            WITH runs AS (
                INSERT INTO "{schema}".runs (run_id, tenant, agent, goal, status, reason, answer,
                    steps, prompt_tokens, completion_tokens, state, outbox, started_at, updated_at)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::text[], $7::text[], $8::int[], $9::bigint[], $10::bigint[], $11::jsonb[],
                    $12::jsonb[], $13::timestamptz[], $14::timestamptz[])
                ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status,
                    reason = EXCLUDED.reason, answer = EXCLUDED.answer, steps = EXCLUDED.steps,
                    prompt_tokens = EXCLUDED.prompt_tokens,
                    completion_tokens = EXCLUDED.completion_tokens, state = EXCLUDED.state,
                    outbox = EXCLUDED.outbox, updated_at = EXCLUDED.updated_at
            ), events AS (
                INSERT INTO "{schema}".events (event_id, run_id, seq, type, topic, producer,
                    occurred_at, payload)
                SELECT * FROM unnest($15::uuid[], $16::text[], $17::int[], $18::text[],
                    $19::text[], $20::text[], $21::timestamptz[], $22::jsonb[])
                ON CONFLICT DO NOTHING
            ), usage AS (
                INSERT INTO "{schema}".usage (event_id, run_id, tenant, agent, model, seq,
                    prompt_tokens, completion_tokens, cost_usd, occurred_at, cached_tokens,
                    cache_write_tokens)
                SELECT * FROM unnest($23::uuid[], $24::text[], $25::text[], $26::text[],
                    $27::text[], $28::int[], $29::bigint[], $30::bigint[], $31::numeric[],
                    $32::timestamptz[], $33::bigint[], $34::bigint[])
                ON CONFLICT DO NOTHING
            )
            SELECT 1
        """


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column: the arrays `unnest` takes apart again."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _usage_row(state: RunState, event: Envelope[Any]) -> tuple[Any, ...] | None:
    """The usage ledger's row of a model decision: its tokens and what they cost."""
    payload = event.payload
    if not isinstance(payload, ModelDecided):
        return None
    usage = payload.usage
    return (
        event.event_id,
        state.run_id,
        state.tenant,
        state.agent,
        payload.model,
        event.seq,
        usage.prompt_tokens,
        usage.completion_tokens,
        decision_price(state, payload.model).of(usage),
        event.occurred_at,
        usage.cached_tokens,
        usage.cache_write_tokens,
    )


_OUTBOX: TypeAdapter[tuple[Sent, ...]] = TypeAdapter(tuple[Sent, ...])


def _encode(stored: StoredRun) -> tuple[str, str]:
    """A run's state and outbox as JSON, each serialised once for both stores."""
    return stored.state.model_dump_json(), _OUTBOX.dump_json(stored.outbox).decode()


def _run_row(state: RunState, state_json: str, outbox_json: str) -> tuple[Any, ...]:
    return (
        state.run_id,
        state.tenant,
        state.agent,
        state.goal,
        state.status.value,
        state.failure.value if state.failure else None,
        state.answer,
        state.step,
        state.usage.prompt_tokens,
        state.usage.completion_tokens,
        state_json,
        outbox_json,
        state.started_at,
        state.updated_at,
    )


def _timeline_rows(consumed: Envelope[Any], emitted: Sequence[Outbound]) -> list[tuple[Any, ...]]:
    """The events table's rows for an input and what it caused."""
    return [
        (
            e.event_id,
            e.run_id,
            e.seq,
            e.type,
            topic,
            e.producer,
            e.occurred_at,
            _timeline_payload(e),
        )
        for topic, e in ((_topic_of(consumed), consumed), *((o.topic, o.event) for o in emitted))
    ]
