"""The log is the source of truth: memory's projections, wiped, come back identical."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from loopline_events import Budget, RunCompleted, RunFailed
from loopline_runtime import schema_name
from loopline_testing import System
from loopline_testing.openai_server import OpenAIServer

from loopline.sdk import Loopline

TABLES = {"runs": "run_id", "events": "event_id", "usage": "event_id", "messages": "run_id, idx"}


async def snapshot(system: System, run_ids: list[str]) -> dict[str, Any]:
    """Every projection of these runs: PostgreSQL rows and Redis values."""
    schema = schema_name("memory", system.kafka.topic_prefix)
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        tables = {
            table: [
                dict(r)
                for r in await conn.fetch(
                    f'SELECT * FROM "{schema}".{table} WHERE run_id = ANY($1::text[]) '
                    f"ORDER BY {key}",
                    run_ids,
                )
            ]
            for table, key in TABLES.items()
        }
    finally:
        await conn.close()
    redis = aioredis.from_url(system.env["LOOPLINE_REDIS_URL"])
    try:
        prefix = f"{system.kafka.topic_prefix}loopline"
        hot = {
            r: (
                await redis.get(f"{prefix}:run:{r}"),
                await redis.lrange(f"{prefix}:history:{r}", 0, -1),
            )
            for r in run_ids
        }
    finally:
        await redis.aclose()
    return {"tables": tables, "redis": hot}


async def wipe(system: System) -> None:
    """Redis flushed of runs, the run tables emptied."""
    schema = schema_name("memory", system.kafka.topic_prefix)
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        for table in TABLES:
            await conn.execute(f'DELETE FROM "{schema}".{table}')
    finally:
        await conn.close()
    redis = aioredis.from_url(system.env["LOOPLINE_REDIS_URL"])
    try:
        keys = [k async for k in redis.scan_iter(match=f"{system.kafka.topic_prefix}loopline:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def test_rebuild_restores_identical_projections_while_new_goals_complete(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        old = [
            await client.submit("Compute 17 + 25, then multiply the result by 3"),
            await client.submit("What is 12*7 + 3 and (100 - 58) / 2?"),
            await client.submit("Count to 9", budget=Budget(max_steps=3)),
        ]
        for run in old:
            assert isinstance((await run.result(timeout=60)).payload, RunCompleted | RunFailed)
        before = await snapshot(system, [r.run_id for r in old])
        assert all(before["tables"].values())
        assert all(before["redis"].values())

        await wipe(system)
        rebuilding = asyncio.create_task(asyncio.to_thread(system.cli, "rebuild", "--json"))
        new = [await client.submit(f"What is {i} * 3?") for i in range(5)]
        answers = [(await run.result(timeout=60)).payload for run in new]
        done = await rebuilding

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["runs"] >= len(old)
    assert [a.answer for a in answers if isinstance(a, RunCompleted)] == [
        f"{i} * 3 = {i * 3}." for i in range(5)
    ]
    after = await snapshot(system, [r.run_id for r in old])
    assert after == before


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


async def test_memory_heals_a_run_whose_state_was_lost_mid_run(
    start_system: Callable[..., System], server: OpenAIServer
) -> None:
    system = start_system(env_extra={"OPENAI_BASE_URL": server.base_url})
    server.reply_tool_calls([("calculator", {"expression": "6 * 7"})], delay_s=2)
    server.reply_text("It is 42.")
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="openai")
        for _ in range(200):  # until the model is thinking: then wipe all memory knows
            if server.calls:
                break
            await asyncio.sleep(0.05)
        await wipe(system)
        outcome = (await run.result(timeout=60)).payload
    assert isinstance(outcome, RunCompleted)
    assert outcome.answer == "It is 42."
    healed = await snapshot(system, [run.run_id])
    assert [r["status"] for r in healed["tables"]["runs"]] == ["completed"]
