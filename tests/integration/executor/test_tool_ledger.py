"""The executor's idempotency ledger on the real PostgreSQL (and Kafka): a side-effecting call
runs at most once, whatever is redelivered or interrupted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from loopline_bus import EventStream, KafkaBus
from loopline_events import (
    DECISIONS,
    OBSERVATIONS,
    Envelope,
    ModelDecided,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)
from loopline_runtime import AgentProfile, Endpoints, migrate, schema_name
from loopline_testing.probes import first_events
from loopline_tool_executor.adapters.ledger import ToolLedger
from loopline_tool_executor.adapters.migrations import MIGRATIONS
from loopline_tool_executor.handlers import ExecutorHandler
from loopline_tools import Effect, Reconcile, ToolContext, ToolRegistry, tool
from pydantic import BaseModel


class PayArgs(BaseModel):
    """Arguments of the test's side-effecting tool."""

    amount: int


class Effects:
    """A side-effecting tool that counts its executions in a PostgreSQL table."""

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool, self.table = pool, f'"{schema}".payments'

    async def create(self) -> None:
        await self.pool.execute(
            f"CREATE TABLE {self.table} (call_id text NOT NULL, amount integer NOT NULL)"
        )

    async def count(self, call_id: str | None = None) -> int:
        sql = f"SELECT count(*) FROM {self.table} WHERE $1::text IS NULL OR call_id = $1"
        return int(await self.pool.fetchval(sql, call_id))

    def registry(
        self, reconcile: Reconcile | None = None, effect: Effect = Effect.SIDE_EFFECT
    ) -> ToolRegistry:
        table, pool = self.table, self.pool

        @tool(effect=effect, reconcile=reconcile)
        async def pay(args: PayArgs, ctx: ToolContext) -> str:
            """Pay an amount (a real, countable effect)."""
            await pool.execute(f"INSERT INTO {table} VALUES ($1, $2)", ctx.call_id, args.amount)
            return f"paid {args.amount}"

        return ToolRegistry([pay])


PROFILES = {"payer": AgentProfile(name="payer", system_prompt="Pay.", tools=("pay",))}


@pytest.fixture
async def pool(loopline_endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(loopline_endpoints.postgres.dsn.get_secret_value())
    yield pool
    await pool.close()


@pytest.fixture
async def ledger(pool: asyncpg.Pool, topic_prefix: str) -> AsyncIterator[ToolLedger]:
    schema = schema_name("executor", topic_prefix)
    async with pool.acquire() as conn:
        await migrate(conn, schema, MIGRATIONS)
    yield ToolLedger(pool, schema)
    await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
async def effects(pool: asyncpg.Pool, ledger: ToolLedger) -> Effects:
    effects = Effects(pool, ledger.schema)
    await effects.create()
    return effects


def decision(*calls: tuple[str, int], seq: int = 1) -> Envelope[ModelDecided]:
    tool_calls = tuple(
        ToolCall(call_id=call_id, tool="pay", arguments={"amount": amount})
        for call_id, amount in calls
    )
    payload = ModelDecided(agent="payer", model="demo", tool_calls=tool_calls)
    return Envelope.of(payload, run_id="run-pay", producer="planner", seq=seq)


async def test_a_decision_delivered_twice_over_kafka_pays_once(
    kafka_bus: KafkaBus, ledger: ToolLedger, effects: Effects
) -> None:
    handler = ExecutorHandler(effects.registry(), PROFILES, ledger=ledger)
    stream = EventStream(kafka_bus.settings, topics=[OBSERVATIONS.name])
    await stream.start()
    await kafka_bus.subscribe("tool-executor", [DECISIONS.name], handler).start()
    event = decision(("call_1", 5), ("call_2", 7))
    await kafka_bus.publish(DECISIONS.name, event)
    await kafka_bus.publish(DECISIONS.name, event)  # redelivered: the same event id
    observed = await first_events(stream, 4)
    await stream.stop()
    assert await effects.count("call_1") == 1
    assert await effects.count("call_2") == 1
    by_call: dict[str, set[tuple[str, str]]] = {}
    for e in observed:
        assert isinstance(e.payload, ToolCallSucceeded)
        by_call.setdefault(e.payload.call_id, set()).add((str(e.event_id), e.payload.output))
    # Each call reported twice, identically: the same event id, the same recorded output.
    assert {k: len(v) for k, v in by_call.items()} == {"call_1": 1, "call_2": 1}
    assert {next(iter(v))[1] for v in by_call.values()} == {"paid 5", "paid 7"}


async def test_an_interrupted_call_without_reconcile_is_reported_unknown_and_never_rerun(
    ledger: ToolLedger, effects: Effects
) -> None:
    await ledger.claim("run-pay", 1, "call_1", "pay")  # started, then the worker died
    handler = ExecutorHandler(effects.registry(), PROFILES, ledger=ledger)
    first = await handler(decision(("call_1", 5)))
    again = await handler(decision(("call_1", 5)))
    assert await effects.count() == 0
    for out in (first, again):
        failed = out[0].event.payload
        assert isinstance(failed, ToolCallFailed)
        assert failed.error.kind is ToolErrorKind.UNKNOWN_OUTCOME
        assert "not run again" in failed.error.message


async def test_reconcile_reports_an_effect_that_happened_without_repeating_it(
    ledger: ToolLedger, effects: Effects
) -> None:
    seen: list[str] = []

    async def reconcile(args: Any, ctx: ToolContext) -> str | None:
        seen.append(ctx.idempotency_key)
        return f"paid {args.amount} (confirmed by the payee)"

    await ledger.claim("run-pay", 1, "call_1", "pay")
    handler = ExecutorHandler(effects.registry(reconcile), PROFILES, ledger=ledger)
    out = await handler(decision(("call_1", 5)))
    payload = out[0].event.payload
    assert isinstance(payload, ToolCallSucceeded)
    assert payload.output == "paid 5 (confirmed by the payee)"
    assert seen == ["run-pay:call_1"]
    assert await effects.count() == 0


async def test_reconcile_saying_nothing_happened_lets_the_call_run_once(
    ledger: ToolLedger, effects: Effects
) -> None:
    async def nothing_happened(args: Any, ctx: ToolContext) -> str | None:
        return None

    await ledger.claim("run-pay", 1, "call_1", "pay")
    handler = ExecutorHandler(effects.registry(nothing_happened), PROFILES, ledger=ledger)
    outs = [await handler(decision(("call_1", 5))) for _ in range(3)]
    assert await effects.count() == 1
    assert [o[0].event.payload.output for o in outs] == ["paid 5"] * 3


async def test_the_same_call_id_at_another_step_is_another_call(
    ledger: ToolLedger, effects: Effects
) -> None:
    handler = ExecutorHandler(effects.registry(), PROFILES, ledger=ledger)
    await handler(decision(("call_1", 5), seq=1))
    await handler(decision(("call_1", 5), seq=3))
    assert await effects.count("call_1") == 2


async def test_pure_tools_may_repeat(ledger: ToolLedger, effects: Effects) -> None:
    handler = ExecutorHandler(effects.registry(effect=Effect.PURE), PROFILES, ledger=ledger)
    await handler(decision(("call_1", 5)))
    await handler(decision(("call_1", 5)))
    assert await effects.count() == 2
