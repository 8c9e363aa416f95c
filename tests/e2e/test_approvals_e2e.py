"""Humans in the loop on the real services: a side-effect tool under an approval policy does not
run until a person approves it, through a kill -9 of every service while the run waits; then
it runs exactly once. A denial is what the model reads, and the tool never runs. What a person
tells a waiting run reaches the model's next request. A replay shows the request and the
decision, and a re-run asks no one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from loopline_events import RunCompleted
from loopline_memory import reads
from loopline_runtime import Endpoints, schema_name
from loopline_testing import TEST_AGENTS, System, running_system
from loopline_testing.effects import read_effect_counts
from loopline_testing.openai_server import (
    OpenAIServer,
    RecordedRequest,
    text_completion,
    tool_call_completion,
)

from loopline.sdk import Loopline

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

STEP_TIMEOUT_S = 2.0
"""Far shorter than the waits below: a held call must read as a wait, not a stall."""
AGENTS = (
    TEST_AGENTS
    + f"""
[agents.careful]
system_prompt = "You record side effects."
model = "demo"
tools = ["record_effect"]
max_steps = 6
deadline_s = 300
step_timeout_s = {STEP_TIMEOUT_S}

[agents.careful.approvals]
effects = ["side_effect"]
timeout_s = 600

[agents.told]
system_prompt = "You record side effects."
model = "openai:gpt-test"
tools = ["record_effect"]
max_steps = 4
deadline_s = 300

[agents.told.approvals]
tools = ["record_effect"]
"""
)


def told_model(request: RecordedRequest) -> dict[str, Any]:
    """Records one effect, then answers with the last thing a person told it."""
    if any(m["role"] == "tool" for m in request["messages"]):
        said = [m["content"] for m in request["messages"] if m["role"] == "user"]
        return text_completion(f"Done. You said: {said[-1]}")
    return tool_call_completion([("record_effect", {"label": "effect 1"})])


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(told_model) as running:
        yield running


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints, model_server: OpenAIServer) -> Iterator[System]:
    env = {"OPENAI_BASE_URL": model_server.base_url, "OPENAI_API_KEY": "sk-test"}
    with running_system(loopline_endpoints, env_extra=env, agents=AGENTS) as running:
        yield running


async def held_calls(system: System, run_id: str, count: int = 1) -> list[reads.Approval]:
    """The run's held calls, once memory holds `count` of them."""
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        for _ in range(600):
            found = [
                a
                for a in await reads.pending_approvals(conn, schema_name("memory", system.prefix))
                if a.run_id == run_id
            ]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"run {run_id} holds no call for approval")


async def effects_of(system: System, run_id: str) -> dict[str, int]:
    counts = await read_effect_counts(system.env["LOOPLINE_POSTGRES_DSN"], system.prefix)
    return {call: n for (run, call), n in counts.calls.items() if run == run_id}


async def test_a_held_call_survives_every_service_killed_and_runs_once_when_approved(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Record 1 side effect", agent="careful")
        (held,) = await held_calls(system, run.run_id)
        assert (held.tool, held.arguments, held.step) == ("record_effect", {"label": "effect 1"}, 1)
        assert "every side_effect tool" in held.policy

        # Longer than its step timeout, then every service killed and started again.
        await asyncio.sleep(STEP_TIMEOUT_S * 2)
        for service in ("memory", "tool-executor", "planner", "recovery"):
            system.kill(service)
        await system.restart("memory", "tool-executor", "planner", "recovery")
        await asyncio.sleep(STEP_TIMEOUT_S * 2)
        (still,) = await held_calls(system, run.run_id)
        assert still.call_id == held.call_id
        assert await effects_of(system, run.run_id) == {}

        await client.approve(run.run_id, held.call_id, decided_by="ana")
        outcome = await run.result(timeout=120)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload
    assert await effects_of(system, run.run_id) == {held.call_id: 1}

    # The replay shows who decided what; a re-run folds the recorded answer and asks no one.
    replayed = system.cli("replay", run.run_id)
    assert replayed.returncode == 0, replayed.stderr
    assert f"decided   step 1 {held.call_id} record_effect: approved by ana at" in replayed.stdout
    (state,) = [
        json.loads(line) for line in system.cli("replay", run.run_id, "--json").stdout.splitlines()
    ]
    (decided,) = state["state"]["decided"]
    assert (decided["approved"], decided["decided_by"]) == (True, "ana")
    assert decided["request"]["arguments"] == {"label": "effect 1"}
    rerun = system.cli("rerun", run.run_id)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "no divergence" in rerun.stdout
    assert await effects_of(system, run.run_id) == {held.call_id: 1}


async def test_a_denied_call_never_runs_and_the_model_reads_why(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Record 1 side effect", agent="careful")
        (held,) = await held_calls(system, run.run_id)
        await client.deny(run.run_id, held.call_id, reason="not this quarter", decided_by="ana")
        await run.result(timeout=60)
    live, _ = await system.memory_states(run.run_id)
    assert live is not None
    told = [m.content for m in live.messages if m.tool_call_id == held.call_id]
    assert told == ["error (denied): ana did not approve this call: not this quarter"]
    assert await effects_of(system, run.run_id) == {}


async def test_a_message_to_a_waiting_run_reaches_the_models_next_request(
    system: System, model_server: OpenAIServer
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Record an effect.", agent="told")
        (held,) = await held_calls(system, run.run_id)
        await client.say(run.run_id, "Use the blue ledger.", sent_by="ana")
        await client.approve(run.run_id, held.call_id)
        outcome = await run.result(timeout=60)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload
    assert outcome.payload.answer == "Done. You said: Use the blue ledger."
    last = [r for r in model_server.requests if "Record an effect." in json.dumps(r)][-1]
    roles = [(m["role"], m.get("content")) for m in last["messages"]][-2:]
    assert roles[0][0] == "tool"
    assert roles[1] == ("user", "Use the blue ledger.")
