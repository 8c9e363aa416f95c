"""Where run state lives: Redis for the hot copy, PostgreSQL for the durable one.

A run is stored in two parts: its head (the state without its history: small, rewritten at
every save) and its history (a row per message, appended, never rewritten), so a save costs
what changed, not what the run has accumulated. Every save writes PostgreSQL first (run rows,
new messages, the runs' new events and usage, in one statement), then Redis (the head, and
the new messages pushed on a list). A load reads Redis and falls back to PostgreSQL, so
losing Redis loses nothing: nor does Redis being unreachable for a while (restarted, its users
reloaded, failed over), which a load reads as a miss and a save as a retryable error.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from loopline_bus import Outbound
from loopline_events import (
    DECISIONS,
    OBSERVATIONS,
    ContextAssembled,
    Envelope,
    GuardHook,
    GuardTripped,
    Message,
    ModelDecided,
    Payload,
    TransientError,
    topic_of,
)
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from loopline_memory.domain import RunState
from loopline_memory.domain.budgets import decision_price

log = logging.getLogger("loopline.memory")

REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    aioredis.ConnectionError,  # refused, cut (a restart, ACL LOAD), or still loading its data
    aioredis.TimeoutError,
    OSError,
)
"""Errors by which Redis was not reached or dropped the call; the same call can succeed later."""


class HotStoreUnavailableError(TransientError):
    """Redis could not be reached; the bus retries the event (in place, then via recovery)."""


@contextlib.contextmanager
def _redis_unavailable_is_retryable(what: str) -> Iterator[None]:
    try:
        yield
    except REDIS_UNAVAILABLE as exc:
        raise HotStoreUnavailableError(f"Redis unavailable to {what}: {exc!r}") from exc


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


HISTORY = {"messages", "tokens"}
"""The state's fields stored apart, a row per message."""


@dataclass(frozen=True, slots=True)
class Pending:
    """What one input did to its run, waiting to be saved."""

    stored: StoredRun
    consumed: Envelope[Any]
    emitted: Sequence[Outbound]
    writes: Sequence[Write] = ()
    saved: int = 0
    """Messages of the run's history already stored: the save adds the ones after."""


def _timeline_payload(event: Envelope[Any]) -> str:
    """What the events table keeps of an event: all of it, except a context's messages."""
    payload: Payload = event.payload
    if isinstance(payload, ContextAssembled):
        return json.dumps(
            {
                "purpose": payload.purpose,
                "messages": payload.length,
                "appended": len(payload.appended),
                "window": payload.window.model_dump(exclude={"note"}) if payload.window else None,
                "tools": [t.name for t in payload.tools],
            }
        )
    return payload.model_dump_json()


def _topic_of(event: Envelope[Any]) -> str:
    payload = event.payload
    if isinstance(payload, GuardTripped):  # on the topic of what it guarded
        tools = (GuardHook.BEFORE_TOOL, GuardHook.AFTER_TOOL)
        return (OBSERVATIONS if payload.hook in tools else DECISIONS).name
    spec = topic_of(event.type)
    return spec.name if spec else ""


class RunStore:
    """Loads and saves runs."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, schema: str, key_prefix: str):
        self.pool, self.redis, self.schema = pool, redis, schema
        self.key_prefix = f"{key_prefix}loopline:run:"
        self.history_prefix = f"{key_prefix}loopline:history:"

    def _key(self, run_id: str) -> str:
        return self.key_prefix + run_id

    def _history_key(self, run_id: str) -> str:
        return self.history_prefix + run_id

    async def load(self, run_id: str) -> StoredRun | None:
        """The run as stored: the hot copy, else the durable one."""
        return await self.load_hot(run_id) or await self.load_durable(run_id)

    async def load_hot(self, run_id: str) -> StoredRun | None:
        """The run as Redis holds it (None if it does not, or not whole, or Redis cannot be
        reached: PostgreSQL, written first, is never behind it)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(self._key(run_id))
                pipe.lrange(self._history_key(run_id), 0, -1)
                head, history = await pipe.execute()
        except REDIS_UNAVAILABLE as exc:
            log.warning("run %s: Redis unavailable (%r); loading the durable copy", run_id, exc)
            return None
        if head is None:
            return None
        stored = json.loads(head)
        if stored["length"] != len(history):
            return None  # the history's list went missing or short: the durable copy decides
        rows = [json.loads(item) for item in history]
        return _assembled(stored["state"], stored["outbox"], rows)

    async def load_durable(self, run_id: str) -> StoredRun | None:
        """The run as PostgreSQL holds it."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f'SELECT state, outbox FROM "{self.schema}".runs WHERE run_id = $1', run_id
            )
            if row is None:
                return None
            history = await conn.fetch(
                f'SELECT tokens, message FROM "{self.schema}".messages WHERE run_id = $1 '
                "ORDER BY idx",
                run_id,
            )
        rows = [[r["tokens"], json.loads(r["message"])] for r in history]
        return _assembled(json.loads(row["state"]), json.loads(row["outbox"]), rows)

    async def forget(self, run_ids: Sequence[str]) -> None:
        """Delete these runs' projections: rows, timeline, usage ledger and hot copies."""
        async with self.pool.acquire() as conn, conn.transaction():
            for table in ("events", "usage", "messages", "runs"):
                await conn.execute(
                    f'DELETE FROM "{self.schema}".{table} WHERE run_id = ANY($1::text[])',
                    list(run_ids),
                )
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start : start + 500]
            keys = [self._key(r) for r in chunk] + [self._history_key(r) for r in chunk]
            if keys:
                with _redis_unavailable_is_retryable("forget runs"):
                    await self.redis.delete(*keys)

    async def save(
        self,
        stored: StoredRun,
        consumed: Envelope[Any],
        emitted: Sequence[Outbound],
        writes: Sequence[Write] = (),
        saved: int = 0,
    ) -> None:
        """Save the run, its new events and `writes` in one transaction; then the hot copy."""
        await self.save_many([Pending(stored, consumed, emitted, writes, saved)])

    async def save_many(self, pending: Sequence[Pending]) -> None:
        """Save what several inputs did, then the hot copies: a run saved more than once keeps
        its last state; every event, ledger row and write is kept, in order.

        Runs, timeline and usage ledger go in one statement (atomic on its own: one round trip
        and one commit for a whole batch); the rare other writes join it in a transaction.
        """
        if not pending:
            return
        latest = {p.stored.state.run_id: p.stored for p in pending}
        saved: dict[str, int] = {}
        for p in pending:  # a run saved twice in a batch adds what it had not stored before
            run_id = p.stored.state.run_id
            saved[run_id] = min(saved.get(run_id, p.saved), p.saved)
        encoded = {run_id: _encode(stored) for run_id, stored in sorted(latest.items())}
        added = {run_id: _history_rows(latest[run_id].state, saved[run_id]) for run_id in encoded}
        runs = [_run_row(latest[run_id].state, *texts) for run_id, texts in encoded.items()]
        events = [row for p in pending for row in _timeline_rows(p.consumed, p.emitted)]
        usage = [row for p in pending if (row := _usage_row(p.stored.state, p.consumed))]
        messages = [
            (run_id, saved[run_id] + i, tokens, text)
            for run_id, rows in added.items()
            for i, (tokens, text) in enumerate(rows)
        ]
        writes = [write for p in pending for write in p.writes]
        columns = [
            *_columns(runs, 14),
            *_columns(events, 8),
            *_columns(usage, 12),
            *_columns(messages, 4),
        ]
        async with self.pool.acquire() as conn:
            if writes:
                async with conn.transaction():
                    await conn.execute(self._save_sql, *columns)
                    for write in writes:
                        await write(conn)
            else:
                await conn.execute(self._save_sql, *columns)
        # One transaction: a reader never sees a head without the history it counts. If it
        # fails, the batch is handled again (a hot copy left behind is rewritten then).
        with _redis_unavailable_is_retryable("save runs"):
            async with self.redis.pipeline(transaction=True) as pipe:
                for run_id, (state, outbox) in encoded.items():
                    length = len(latest[run_id].state.messages)
                    head = f'{{"state":{state},"outbox":{outbox},"length":{length}}}'
                    pipe.set(self._key(run_id), head, ex=HOT_TTL_S)
                    key = self._history_key(run_id)
                    pipe.ltrim(key, 0, saved[run_id] - 1)  # what a failed save may have left
                    rows = added[run_id]
                    if rows:
                        pipe.rpush(key, *(f"[{tokens},{text}]" for tokens, text in rows))
                    pipe.expire(key, HOT_TTL_S)
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
            ), messages AS (
                INSERT INTO "{schema}".messages (run_id, idx, tokens, message)
                SELECT * FROM unnest($35::text[], $36::int[], $37::int[], $38::jsonb[])
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
    """A run's head (its state but its history) and outbox as JSON, each serialised once for
    both stores."""
    return stored.state.model_dump_json(exclude=HISTORY), _OUTBOX.dump_json(stored.outbox).decode()


_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)


def _history_rows(state: RunState, saved: int) -> list[tuple[int, str]]:
    """The messages of the run's history after the first `saved`: (tokens, JSON) each."""
    return [
        (tokens, _MESSAGE.dump_json(message).decode())
        for message, tokens in zip(state.messages[saved:], state.tokens[saved:], strict=True)
    ]


def _assembled(state: dict[str, Any], outbox: list[Any], rows: list[list[Any]]) -> StoredRun:
    """A stored run from its head, outbox and history rows ([tokens, message] each)."""
    history = {"messages": [m for _, m in rows], "tokens": [t for t, _ in rows]}
    return StoredRun(
        state=RunState.model_validate({**state, **history}),
        outbox=tuple(Sent.model_validate(s) for s in outbox),
    )


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
