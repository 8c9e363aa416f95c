"""`record_effect`, the chaos suite's side-effecting tool, on the real PostgreSQL: it counts
every execution of a call (so a repeat would show), tells a reconcile whether a call ran, and
reports an unreachable database as a failure that is safe to retry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from loopline_events import ToolErrorKind
from loopline_runtime import Endpoints, schema_name
from loopline_testing.chaos import free_ports
from loopline_testing.effects import (
    SCHEMA,
    RecordEffectArgs,
    close_store,
    read_effect_counts,
    record_effect,
)
from loopline_tools import ToolContext, ToolFailure, ToolRegistry, run_tool


@pytest.fixture
async def namespace(
    loopline_endpoints: Endpoints, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The tool pointed at the test's namespace, as the executor's environment points it."""
    dsn = loopline_endpoints.postgres.dsn.get_secret_value()
    monkeypatch.setenv("LOOPLINE_POSTGRES_DSN", dsn)
    monkeypatch.setenv("LOOPLINE_KAFKA_TOPIC_PREFIX", topic_prefix)
    yield topic_prefix
    await close_store()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name(SCHEMA, topic_prefix)}" CASCADE')
    finally:
        await conn.close()


def test_the_executor_finds_it_through_the_entry_point() -> None:
    assert ToolRegistry.default().get("record_effect") is record_effect


async def test_every_execution_is_counted_per_run_and_call(
    namespace: str, loopline_endpoints: Endpoints
) -> None:
    first, other = ToolContext("run-1", "call_1_0"), ToolContext("run-1", "call_2_0")
    for ctx in (first, first, other):  # run twice: what the executor's ledger must prevent
        outcome = await run_tool(record_effect, {"label": "effect 1"}, ctx)
        assert outcome.output == "recorded effect 1"
    counts = await read_effect_counts(loopline_endpoints.postgres.dsn.get_secret_value(), namespace)
    assert counts.calls == {("run-1", "call_1_0"): 2, ("run-1", "call_2_0"): 1}
    assert counts.duplicates == {("run-1", "call_1_0"): 2}


async def test_a_reconcile_says_whether_the_call_ran(namespace: str) -> None:
    assert record_effect.reconcile is not None
    args, ctx = RecordEffectArgs(label="effect 3"), ToolContext("run-2", "call_3_0")
    assert await record_effect.reconcile(args, ctx) is None
    await record_effect.fn(args, ctx)
    assert await record_effect.reconcile(args, ctx) == "recorded effect 3"


async def test_an_unreachable_database_is_a_failure_safe_to_retry(
    monkeypatch: pytest.MonkeyPatch, topic_prefix: str
) -> None:
    (closed,) = free_ports(1)
    monkeypatch.setenv("LOOPLINE_POSTGRES_DSN", f"postgresql://loopline@127.0.0.1:{closed}/x")
    monkeypatch.setenv("LOOPLINE_KAFKA_TOPIC_PREFIX", topic_prefix)
    with pytest.raises(ToolFailure) as failed:
        await record_effect.fn(RecordEffectArgs(label="x"), ToolContext("run-3", "call_1_0"))
    assert failed.value.retryable
    assert failed.value.kind is ToolErrorKind.EXECUTION
    assert "the effects store is unavailable" in failed.value.message
