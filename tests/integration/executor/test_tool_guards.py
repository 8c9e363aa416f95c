"""The tool-executor's guards on the real Kafka and PostgreSQL: a secret in a tool's output
never reaches agent.observations (its redacted form does), nor its ledger; a spend over the
limit is refused before the tool runs, told as a trip and a failed call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from loopline_bus import EventStream, KafkaBus
from loopline_events import (
    DECISIONS,
    OBSERVATIONS,
    Envelope,
    GuardHook,
    GuardTripped,
    ModelDecided,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)
from loopline_runtime import (
    PASS,
    Endpoints,
    Guard,
    GuardContext,
    Trip,
    Verdict,
    load_guards,
    migrate,
    parse_profiles,
    schema_name,
)
from loopline_testing.probes import first_events
from loopline_tool_executor.adapters.ledger import ToolLedger
from loopline_tool_executor.adapters.migrations import MIGRATIONS
from loopline_tool_executor.handlers import ExecutorHandler
from loopline_tools import Effect, ToolContext, ToolRegistry, tool
from pydantic import BaseModel

API_KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"
CARD = "4111 1111 1111 1111"
SECRETS = (API_KEY, CARD, CARD.replace(" ", ""))
"""Each secret as a tool writes it (a figure such as a duration may hold "4111" by chance)."""
MASK = "[redacted]"

AGENTS = """
[agents.payer]
system_prompt = "Pay."
tools = ["pay", "lookup"]
[agents.payer.guards.redact_secrets]
[agents.payer.guards.spend_limit]
tool = "pay"
argument = "amount"
max = 100

[agents.strict]
system_prompt = "Pay, carefully."
tools = ["pay"]
[agents.strict.guards.spend_limit]
tool = "pay"
argument = "amount"
max = 100
action = "fail"
"""
PROFILES = parse_profiles(AGENTS)


class PayArgs(BaseModel):
    """Arguments of the test's payment tool."""

    amount: float
    note: str = ""


class LookupArgs(BaseModel):
    """Arguments of the test's lookup tool."""

    account: str


class Tools:
    """A side-effecting payment counted in PostgreSQL, and a lookup that leaks secrets."""

    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool, self.table = pool, f'"{schema}".payments'

    async def create(self) -> None:
        await self.pool.execute(f"CREATE TABLE {self.table} (call_id text, note text)")

    async def notes(self) -> list[str]:
        return [r["note"] for r in await self.pool.fetch(f"SELECT note FROM {self.table}")]

    def registry(self) -> ToolRegistry:
        table, pool = self.table, self.pool

        @tool(effect=Effect.SIDE_EFFECT)
        async def pay(args: PayArgs, ctx: ToolContext) -> str:
            """Pay an amount, with a note, and print the receipt (with the card it charged)."""
            await pool.execute(f"INSERT INTO {table} VALUES ($1, $2)", ctx.call_id, args.note)
            return f"paid {args.amount:g} with card {CARD}: {args.note}"

        @tool(effect=Effect.PURE)
        async def lookup(args: LookupArgs, ctx: ToolContext) -> str:
            """Look an account up (its record holds its API key)."""
            return f"account {args.account}: key={API_KEY}, card {CARD.replace(' ', '')}"

        return ToolRegistry([pay, lookup])


@pytest.fixture
async def ledger(loopline_endpoints: Endpoints, topic_prefix: str) -> AsyncIterator[ToolLedger]:
    pool = await asyncpg.create_pool(loopline_endpoints.postgres.dsn.get_secret_value())
    schema = schema_name("executor", topic_prefix)
    async with pool.acquire() as conn:
        await migrate(conn, schema, MIGRATIONS)
    yield ToolLedger(pool, schema)
    await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await pool.close()


@pytest.fixture
async def tools(ledger: ToolLedger) -> Tools:
    made = Tools(ledger.pool, ledger.schema)
    await made.create()
    return made


def decision(agent: str, *calls: ToolCall, seq: int = 1) -> Envelope[ModelDecided]:
    payload = ModelDecided(agent=agent, model="demo", tool_calls=calls)
    return Envelope.of(payload, run_id=f"run-{agent}", producer="planner", seq=seq)


async def observed(
    kafka_bus: KafkaBus, handler: ExecutorHandler, event: Envelope[Any], count: int
) -> list[Envelope[Any]]:
    """What the executor, subscribed to agent.decisions, publishes for `event`."""
    stream = EventStream(kafka_bus.settings, topics=[OBSERVATIONS.name])
    await stream.start()
    try:
        await kafka_bus.subscribe("tool-executor", [DECISIONS.name], handler).start()
        await kafka_bus.publish(DECISIONS.name, event)
        return await first_events(stream, count)
    finally:
        await stream.stop()


async def test_a_secret_in_an_output_reaches_observations_only_redacted(
    kafka_bus: KafkaBus, ledger: ToolLedger, tools: Tools
) -> None:
    handler = ExecutorHandler(tools.registry(), PROFILES, ledger=ledger)
    event = decision(
        "payer",
        ToolCall(call_id="c1", tool="lookup", arguments={"account": "acme"}),
        ToolCall(call_id="c2", tool="pay", arguments={"amount": 20, "note": f"use {API_KEY}"}),
    )
    results = await observed(kafka_bus, handler, event, 2)
    outputs = {e.payload.call_id: e.payload.output for e in results}
    assert all(isinstance(e.payload, ToolCallSucceeded) for e in results)
    assert outputs == {
        "c1": f"account acme: key={MASK}, card {MASK}",
        # The note reached the tool redacted (arguments), and the receipt's card is masked.
        "c2": f"paid 20 with card {MASK}: use {MASK}",
    }
    for e in results:
        published = e.model_dump_json()
        assert not any(secret in published for secret in SECRETS)
    assert await tools.notes() == [f"use {MASK}"]
    # The ledger, which replays the payment's result, holds the redacted form only.
    recorded = await ledger.claim(event.run_id, event.seq, "c2", "pay")
    assert recorded.outcome is not None
    assert not any(secret in json.dumps(recorded.outcome) for secret in SECRETS)


async def test_a_spend_over_the_limit_is_refused_and_told(
    kafka_bus: KafkaBus, ledger: ToolLedger, tools: Tools
) -> None:
    handler = ExecutorHandler(tools.registry(), PROFILES, ledger=ledger)
    event = decision(
        "payer",
        ToolCall(call_id="big", tool="pay", arguments={"amount": 250, "note": "a car"}),
        ToolCall(call_id="small", tool="pay", arguments={"amount": 5, "note": "a coffee"}),
    )
    results = await observed(kafka_bus, handler, event, 3)
    trip, failed = (e for e in results if e.payload.call_id == "big")
    assert trip.payload == GuardTripped(
        guard="spend_limit",
        hook=GuardHook.BEFORE_TOOL,
        reason="pay: amount = 250 is over the limit of 100",
        action="tell",
        call_id="big",
        tool="pay",
    )
    assert isinstance(failed.payload, ToolCallFailed)
    assert failed.payload.error.kind is ToolErrorKind.GUARD
    assert failed.payload.error.message == (
        "guard 'spend_limit' refused the call: pay: amount = 250 is over the limit of 100"
    )
    # Both answer the decision, in the run's order: the trip first.
    assert results.index(trip) < results.index(failed)
    assert {e.causation_id for e in results} == {event.event_id}
    assert await tools.notes() == ["a coffee"]  # the refused payment never ran


async def test_a_spend_limit_that_fails_the_run_says_so(
    kafka_bus: KafkaBus, ledger: ToolLedger, tools: Tools
) -> None:
    handler = ExecutorHandler(tools.registry(), PROFILES, ledger=ledger)
    event = decision("strict", ToolCall(call_id="big", tool="pay", arguments={"amount": 101}))
    trip, failed = await observed(kafka_bus, handler, event, 2)
    assert isinstance(trip.payload, GuardTripped)
    assert (trip.payload.action, trip.payload.call_id) == ("fail", "big")
    assert isinstance(failed.payload, ToolCallFailed)
    assert failed.payload.error.kind is ToolErrorKind.GUARD
    assert await tools.notes() == []


class WithholdReceipts(Guard):
    """Withholds every receipt, and the run with it."""

    async def after_tool(self, call: ToolCall, output: str, at: GuardContext) -> Verdict[str]:
        return Trip("receipts are confidential", "fail") if "paid" in output else PASS


async def test_a_withheld_output_of_a_call_met_again_is_told_again_without_running_it(
    ledger: ToolLedger, tools: Tools
) -> None:
    profiles = parse_profiles(
        '[agents.payer]\nsystem_prompt = "s"\ntools = ["pay"]\n[agents.payer.guards.withhold]\n'
    )
    guards = load_guards(profiles, {"withhold": lambda: WithholdReceipts})
    handler = ExecutorHandler(tools.registry(), profiles, ledger=ledger, guards=guards)
    event = decision("payer", ToolCall(call_id="c", tool="pay", arguments={"amount": 5}))
    first = await handler(event)
    again = await handler(event)  # a redelivery: the ledger replays what it recorded
    assert await tools.notes() == [""]
    for out in (first, again):
        trip, failed = (o.event.payload for o in out)
        assert isinstance(trip, GuardTripped)
        assert (trip.guard, trip.hook, trip.action) == ("withhold", GuardHook.AFTER_TOOL, "fail")
        assert isinstance(failed, ToolCallFailed)
        assert failed.error.message == (
            "guard 'withhold' withheld the output: receipts are confidential"
        )
    assert [o.event.event_id for o in first] == [o.event.event_id for o in again]
