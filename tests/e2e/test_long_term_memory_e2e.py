"""Long-term memory across runs: kept by one run, recalled by a later run of the same tenant,
never by another tenant's."""

from __future__ import annotations

import asyncpg
from loopline_events import ContextAssembled, RunCompleted, ToolCallSucceeded
from loopline_runtime import schema_name
from loopline_testing import System

from loopline.sdk import Loopline


async def test_a_fact_remembered_is_recalled_by_the_same_tenant_only(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        kept = await client.submit("Remember that my locker is 12", agent="memo", tenant="acme")
        kept_steps = [e async for e in kept.steps()]
        ours = await client.submit("Recall my locker", agent="memo", tenant="acme")
        our_steps = [e async for e in ours.steps()]
        theirs = await client.submit("Recall my locker", agent="memo", tenant="globex")
        their_steps = [e async for e in theirs.steps()]

    remembered = [e for e in kept_steps if isinstance(e.payload, ToolCallSucceeded)]
    assert [(e.producer, e.payload.tool) for e in remembered] == [
        ("memory", "recall"),
        ("memory", "remember"),
    ]
    assert isinstance(kept_steps[-1].payload, RunCompleted)

    answer = our_steps[-1].payload
    assert isinstance(answer, RunCompleted)
    assert "my locker is 12" in answer.answer
    first = next(e.payload for e in our_steps if isinstance(e.payload, ContextAssembled))
    recalled = [m.content for m in first.appended if m.role == "system"][1:]
    assert len(recalled) == 1  # recalled into the first context, before the model is asked
    assert "my locker is 12" in recalled[0]

    other = their_steps[-1].payload
    assert isinstance(other, RunCompleted)
    assert "12" not in other.answer
    assert "No memories match" in other.answer
    first_theirs = next(e.payload for e in their_steps if isinstance(e.payload, ContextAssembled))
    assert all("12" not in m.content for m in first_theirs.appended)

    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        schema = schema_name("memory", system.kafka.topic_prefix)
        rows = await conn.fetch(
            f'SELECT tenant, kind, content FROM "{schema}".memories ORDER BY id'
        )
    finally:
        await conn.close()
    facts = [(r["tenant"], r["content"]) for r in rows if r["kind"] == "fact"]
    assert facts == [("acme", "my locker is 12")]
    episodes = sorted(
        (r["tenant"], r["content"].splitlines()[0]) for r in rows if r["kind"] == "episode"
    )
    assert episodes == [
        ("acme", "Goal: Recall my locker"),
        ("acme", "Goal: Remember that my locker is 12"),
        ("globex", "Goal: Recall my locker"),
    ]
