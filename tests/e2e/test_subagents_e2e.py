"""Sub-agents on the real services: a lead agent hands a sub-task to another agent with the
`delegate` tool, which runs as a child run; the child's answer is the call's result and its
spend counts against the lead's; a failed child is a tool error the lead's model reads;
cancelling the lead cancels its child; a lead waiting longer than its step timeout for a
slow child is waiting, not stalled; `loopline show` and `runs` show the tree, and a replay of
the lead rebuilds memory's state from its own log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from loopline_events import RunCancelled, RunCompleted
from loopline_memory import reads
from loopline_runtime import Endpoints, schema_name
from loopline_testing import TEST_AGENTS, System, running_system
from loopline_testing.openai_server import (
    OpenAIServer,
    RecordedRequest,
    text_completion,
    tool_call_completion,
)

from loopline.sdk import Loopline

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SLOW_MODEL_S = 3.0
"""How long the slow helper's model thinks a step: longer than the lead's step timeout."""
LEAD_STEP_TIMEOUT_S = 2.0
AGENTS = (
    TEST_AGENTS
    + f"""
[agents.lead]
system_prompt = "Lead."
model = "demo"
tools = ["delegate", "calculator"]
delegates = ["calculator", "default", "slow"]
max_steps = 6
deadline_s = 120
step_timeout_s = {LEAD_STEP_TIMEOUT_S}

[agents.slow]
description = "Thinks slowly."
system_prompt = "Help."
model = "openai:gpt-test"
tools = ["calculator"]
max_steps = 4
deadline_s = 120
"""
)


def slow_model(request: RecordedRequest) -> dict[str, Any]:
    """Asks the calculator for 6 * 7, then answers with what it said."""
    told = [m["content"] for m in request["messages"] if m["role"] == "tool"]
    if told:
        return text_completion(f"6 * 7 = {told[-1]}.")
    return tool_call_completion([("calculator", {"expression": "6 * 7"})])


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(slow_model, delay_s=SLOW_MODEL_S) as running:
        yield running


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints, model_server: OpenAIServer) -> Iterator[System]:
    env = {"OPENAI_BASE_URL": model_server.base_url, "OPENAI_API_KEY": "sk-test"}
    with running_system(loopline_endpoints, env_extra=env, agents=AGENTS) as running:
        yield running


async def summary(system: System, run_id: str) -> reads.RunSummary | None:
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        return await reads.summary(conn, schema_name("memory", system.prefix), run_id)
    finally:
        await conn.close()


async def child_of(system: System, run_id: str) -> str:
    """The run's one sub-task, once memory recorded it."""
    for _ in range(300):
        head = await summary(system, run_id)
        if head is not None and head.children:
            (child,) = head.children
            return str(child["run_id"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} started no sub-task")


async def test_a_lead_answers_with_its_sub_task_s_answer_and_pays_for_it(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit(
            "Ask calculator: Compute 17 + 25, then multiply the result by 3", agent="lead"
        )
        outcome = await run.result(timeout=90)
        child = await child_of(system, run.run_id)
        child_outcome = await (await client.run(child)).result(timeout=30)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload.model_dump_json()
    assert outcome.payload.answer.startswith("calculator answered:")
    assert "126" in outcome.payload.answer
    assert isinstance(child_outcome.payload, RunCompleted)
    # What the child spent counts in the lead's total.
    assert outcome.payload.usage.total_tokens > child_outcome.payload.usage.total_tokens > 0

    head = await summary(system, child)
    assert head is not None
    assert head.row.parent_run_id == run.run_id
    shown = system.cli("show", run.run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"sub-task {child}  agent calculator  step 1  ended" in shown.stdout
    listed = system.cli("runs", "--limit", "50")
    lines = listed.stdout.splitlines()
    parent_line = next(i for i, line in enumerate(lines) if line.startswith(run.run_id))
    assert lines[parent_line + 1].startswith(f"└ {child}")

    replayed = system.cli("replay", "--check", run.run_id)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == f"{run.run_id}  same"


async def test_a_lead_hands_out_two_sub_tasks_at_once_and_answers_with_both(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit(
            "Ask calculator: What is 6 * 7?; ask default: What is 2 + 3?", agent="lead"
        )
        outcome = await run.result(timeout=90)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload.model_dump_json()
    assert outcome.payload.answer == (
        "calculator answered: 6 * 7 = 42.; default answered: 2 + 3 = 5."
    )
    head = await summary(system, run.run_id)
    assert head is not None
    assert sorted(c["agent"] for c in head.children) == ["calculator", "default"]

    # The usage ledger, as `show` reads it: the lead's own calls, then each child's under it.
    shown = json.loads(system.cli("show", run.run_id, "--json").stdout)
    tree = [(t["depth"], t["agent"], t["parent_run_id"]) for t in shown["spend"]]
    assert tree[0] == (0, "lead", None)
    assert sorted(tree[1:]) == [(1, "calculator", run.run_id), (1, "default", run.run_id)]
    assert all(t["prompt_tokens"] > 0 for t in shown["spend"])

    # A re-run of the lead folds its recorded events, children's answers included: it calls
    # no model and starts no child, and emits what memory emitted.
    rerun = system.cli("rerun", run.run_id)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "no divergence" in rerun.stdout

    # A fork after the delegating step starts from the children's answers: no child again.
    forked = system.cli("fork", run.run_id, "--from", "1", "--wait", "--json", timeout=60)
    assert forked.returncode == 0, forked.stdout + forked.stderr
    events = [json.loads(line) for line in forked.stdout.splitlines() if line.startswith("{")]
    (end,) = [e for e in events if e.get("type") == "RunCompleted"]
    assert end["payload"]["answer"] == outcome.payload.answer
    fork_head = await summary(system, end["run_id"])
    assert fork_head is not None
    assert fork_head.children == ()


async def test_a_sub_task_for_an_agent_not_allowed_is_an_error_the_lead_reads(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Ask nobody: What is 6 * 7?", agent="lead")
        outcome = await run.result(timeout=90)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload.model_dump_json()
    assert "delegate failed: error (invalid_arguments): agent: one of calculator" in (
        outcome.payload.answer
    )
    head = await summary(system, run.run_id)
    assert head is not None
    assert head.children == ()


async def test_a_failed_sub_task_is_a_tool_error_the_lead_reads(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        # The calculator agent has 10 steps: counting to 50 fails it on max_steps.
        run = await client.submit("Ask calculator: Count to 50", agent="lead")
        outcome = await run.result(timeout=90)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload.model_dump_json()
    assert "delegate failed: error (child_failed)" in outcome.payload.answer
    assert "(max_steps)" in outcome.payload.answer


async def test_a_lead_waits_for_a_slow_sub_task_past_its_step_timeout(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Ask slow: What is 6 * 7?", agent="lead")
        outcome = await run.result(timeout=90)
    # Two model steps of 3 s in the child: the lead waited over 6 s with a 2 s step timeout,
    # and the watchdog neither re-drove nor failed it.
    assert isinstance(outcome.payload, RunCompleted), outcome.payload.model_dump_json()
    assert outcome.payload.answer == "slow answered: 6 * 7 = 42."


async def test_cancelling_the_lead_cancels_its_sub_task(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Ask slow: What is 6 * 7?", agent="lead")
        child = await child_of(system, run.run_id)
        await client.cancel(run.run_id, reason="no longer needed")
        outcome = await run.result(timeout=60)
        child_outcome = await (await client.run(child)).result(timeout=60)
    assert isinstance(outcome.payload, RunCancelled)
    assert isinstance(child_outcome.payload, RunCancelled)
    assert child_outcome.payload.reason == "its parent run ended"
    shown = json.loads(system.cli("show", child, "--json").stdout)
    assert shown["run"]["row"]["parent_run_id"] == run.run_id
