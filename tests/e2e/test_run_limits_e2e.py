"""Budgets, no-progress detection and the context window, with the four services running."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from loopline_events import (
    Budget,
    FailureReason,
    RunCompleted,
    RunFailed,
)
from loopline_memory.domain import window
from loopline_runtime import Endpoints, schema_name
from loopline_testing import System, running_system
from loopline_testing.openai_server import OpenAIServer, RecordedRequest, tool_call_completion
from loopline_testing.probes import context_requests

from loopline.sdk import Loopline


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints) -> Iterator[System]:
    """The four services, shared by the module's tests that need no model server."""
    with running_system(loopline_endpoints) as running:
        yield running


async def _fetch(system: System, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        schema = schema_name("memory", system.kafka.topic_prefix)
        return list(await conn.fetch(sql.replace("{schema}", f'"{schema}"'), *args))
    finally:
        await conn.close()


async def test_a_run_over_its_token_budget_ends_budget_exhausted_with_its_spend(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit(
            "Count to 100", budget=Budget(max_tokens=300, max_steps=50), tenant="acme"
        )
        outcome = (await run.result(timeout=90)).payload
    assert isinstance(outcome, RunFailed)
    assert outcome.reason is FailureReason.BUDGET_EXHAUSTED
    spent = outcome.usage.total_tokens
    assert spent >= 300
    assert f"{spent} tokens" in outcome.message
    assert outcome.cost_usd > 0
    assert outcome.steps < 100

    (ledger,) = await _fetch(
        system, "SELECT * FROM {schema}.usage_by_run WHERE run_id = $1", run.run_id
    )
    assert (ledger["tenant"], ledger["total_tokens"], ledger["decisions"]) == (
        "acme",
        spent,
        outcome.steps,
    )
    (tenant,) = await _fetch(system, "SELECT * FROM {schema}.usage_by_tenant WHERE tenant = 'acme'")
    assert tenant["total_tokens"] == spent
    _, state = await system.memory_states(run.run_id)
    assert state is not None
    notes = [m.content for m in state.messages if m.content.startswith("[loopline] Budget")]
    assert len(notes) == 1  # warned once, one step before the end


async def test_a_model_repeating_one_call_forever_ends_with_no_progress(
    start_system: Callable[..., System],
) -> None:
    def same_call(_: RecordedRequest) -> dict[str, Any]:
        return tool_call_completion([("calculator", {"expression": "1 + 1"})])

    with OpenAIServer(default=same_call) as server:
        system = start_system(
            env_extra={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        )
        async with Loopline(system.kafka, producer="e2e") as client:
            run = await client.submit("What is 1 + 1?", agent="looper")
            outcome = (await run.result(timeout=90)).payload
        requests = list(server.requests)
    assert isinstance(outcome, RunFailed)
    assert outcome.reason is FailureReason.NO_PROGRESS
    assert outcome.steps == 4  # three repeats, a nudge, and one more repeat; max_steps is 30
    assert "3 times in a row" in outcome.message
    nudges = [
        m["content"]
        for m in requests[-1]["messages"]
        if m["role"] == "user" and "No progress" in (m["content"] or "")
    ]
    assert len(nudges) == 1


async def test_a_run_longer_than_its_context_budget_goes_on_within_it(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Count to 20", agent="compact")
        steps = [e async for e in run.steps()]
    outcome = steps[-1].payload
    assert isinstance(outcome, RunCompleted), outcome
    assert "I counted to 20" in outcome.answer
    requests = await context_requests(system.kafka, run.run_id)
    assert len(requests) == 21
    sizes = [
        window.tools_tokens(c.tools) + sum(window.message_tokens(m) for m in messages)
        for c, messages in requests
    ]
    assert max(sizes) <= 300  # the profile's context_budget_tokens
    compacted = [m for _, m in requests if any("were left out" in x.content for x in m)]
    assert len(compacted) >= 5
    for messages in compacted:  # the system prompt and the goal always stay
        assert [m.content for m in messages[:2]] == ["You count.", "Count to 20"]


async def test_a_raw_goal_asking_more_than_its_profile_allows_is_capped_and_shows_it(
    system: System,
) -> None:
    run_id = f"greedy-{uuid.uuid4().hex[:8]}"
    greedy = {"max_steps": 10_000, "deadline_s": 864_000, "max_cost_usd": 1_000_000}
    goal = {
        "type": "GoalSubmitted",
        "run_id": run_id,
        "payload": {"goal": "What is 6 * 7?", "agent": "calculator", "budget": greedy},
    }
    async with system.results() as results:
        await asyncio.to_thread(system.kcat_produce, "agent.goals", run_id, json.dumps(goal))
        outcome = (await results.wait_for({run_id}))[run_id]
    assert isinstance(outcome.payload, RunCompleted)

    shown = await asyncio.to_thread(system.cli, "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "limits: 10 steps" in shown.stdout
    assert "capped: max_steps: asked 10000, capped to the profile's 10" in shown.stdout
    assert "capped: deadline_s: asked 864000, capped to the profile's 120" in shown.stdout
    run = json.loads((await asyncio.to_thread(system.cli, "show", run_id, "--json")).stdout)["run"]
    assert run["limits"]["max_steps"] == 10
    assert run["limits"]["max_cost_usd"] == 1_000_000  # the profile leaves cost open
    assert len(run["capped"]) == 2
