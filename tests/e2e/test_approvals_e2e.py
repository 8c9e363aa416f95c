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
from loopline_events import FailureReason, RunCancelled, RunCompleted, RunFailed
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
HOLD_S = 3 * STEP_TIMEOUT_S
"""How long a call of `hasty` and `strict` waits for a person."""
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

[agents.burst]
system_prompt = "You record side effects."
model = "demo"
tools = ["record_effect"]
max_steps = 6
deadline_s = 600
step_timeout_s = 20

[agents.burst.approvals]
tools = ["record_effect"]

[agents.hasty]
system_prompt = "You record side effects."
model = "demo"
tools = ["record_effect"]
max_steps = 6
deadline_s = 300
step_timeout_s = {STEP_TIMEOUT_S}

[agents.hasty.approvals]
effects = ["side_effect"]
timeout_s = {HOLD_S}
on_timeout = "deny"

[agents.strict]
system_prompt = "You record side effects."
model = "demo"
tools = ["record_effect"]
max_steps = 6
deadline_s = 300
step_timeout_s = {STEP_TIMEOUT_S}

[agents.strict.approvals]
effects = ["side_effect"]
timeout_s = {HOLD_S}
on_timeout = "fail"

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


async def held_calls(
    system: System,
    run_id: str | None,
    count: int = 1,
    agent: str | None = None,
    step: int | None = None,
) -> list[reads.Approval]:
    """The run's held calls (of every run of `agent`, when no run is named; of `step`, when
    given), once memory holds `count` of them."""
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    schema = schema_name("memory", system.prefix)
    try:
        for _ in range(1200):
            found = [
                a
                for a in await reads.pending_approvals(conn, schema, limit=1000)
                if (a.run_id == run_id or (run_id is None and a.agent == agent))
                and (step is None or a.step == step)
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
    # A fork after the approved step starts from its recorded result: nothing held again.
    forked = system.cli("fork", run.run_id, "--from", "1", "--wait", "--json", timeout=90)
    assert forked.returncode == 0, forked.stdout + forked.stderr
    events = [json.loads(line) for line in forked.stdout.splitlines() if line.startswith("{")]
    (end,) = [e for e in events if e.get("type") == "RunCompleted"]
    fork_id = end["run_id"]
    assert await effects_of(system, fork_id) == {}
    listed = json.loads(system.cli("approvals", "ls", "--json").stdout)
    assert all(a["run_id"] != fork_id for a in listed)


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


async def test_a_call_no_one_decides_on_is_denied_or_fails_the_run_as_its_profile_says(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        denied = await client.submit("Record 1 side effect", agent="hasty")
        failed = await client.submit("Record 1 side effect", agent="strict")
        (held,) = await held_calls(system, denied.run_id)
        await held_calls(system, failed.run_id)
        ended = await failed.result(timeout=60)
        await denied.result(timeout=60)
    assert isinstance(ended.payload, RunFailed), ended.payload
    assert ended.payload.reason is FailureReason.APPROVAL_TIMEOUT
    live, _ = await system.memory_states(denied.run_id)
    assert live is not None
    (decided,) = live.decided
    assert (decided.approved, decided.decided_by) == (False, "recovery")
    # Not before its time: the wait was a wait, not a stall. The hold counts from the decision
    # that made the call (a redelivered decision holds it as long), a little before the request.
    assert decided.decided_at >= held.until
    assert (held.until - held.requested_at).total_seconds() > HOLD_S - 1
    told = [m.content for m in live.messages if m.tool_call_id == held.call_id]
    assert len(told) == 1
    assert told[0].startswith("error (denied): recovery did not approve this call: no one decided")
    assert await effects_of(system, denied.run_id) == {}
    assert await effects_of(system, failed.run_id) == {}


async def test_cancelling_a_waiting_run_withdraws_its_held_call(system: System) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Record 1 side effect", agent="careful")
        (held,) = await held_calls(system, run.run_id)
        await client.cancel(run.run_id, reason="changed my mind")
        outcome = await run.result(timeout=60)
    assert isinstance(outcome.payload, RunCancelled), outcome.payload
    listed = system.cli("approvals", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert all(a["run_id"] != run.run_id for a in json.loads(listed.stdout))
    late = system.cli("approvals", "approve", run.run_id, held.call_id)
    assert late.returncode == 1
    assert "ended" in late.stderr
    assert await effects_of(system, run.run_id) == {}


RUNS = 100


async def test_a_hundred_waiting_runs_approved_in_one_burst_from_the_cli_each_run_once(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        runs = [await client.submit("Record 2 side effects", agent="burst") for _ in range(RUNS)]
        await held_calls(system, None, RUNS, agent="burst")
        # The burst, with the executor killed as it runs the approved calls, then back.
        burst = asyncio.create_task(
            asyncio.to_thread(system.cli, "approvals", "approve", "--all", "--agent", "burst")
        )
        await asyncio.sleep(1.0)
        system.kill("tool-executor")
        await system.restart("tool-executor")
        approved = await burst
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.strip() == f"{RUNS} approval(s) sent"
        # Each run's second effect is held in turn: approve those too.
        await held_calls(system, None, RUNS, agent="burst", step=2)
        again = await asyncio.to_thread(
            system.cli, "approvals", "approve", "--all", "--agent", "burst"
        )
        assert again.returncode == 0, again.stderr
        outcomes = await asyncio.gather(*(run.result(timeout=240) for run in runs))
    assert all(isinstance(o.payload, RunCompleted) for o in outcomes), {
        type(o.payload).__name__ for o in outcomes
    }
    counts = await read_effect_counts(system.env["LOOPLINE_POSTGRES_DSN"], system.prefix)
    mine = {k: n for k, n in counts.calls.items() if k[0] in {r.run_id for r in runs}}
    assert len(mine) == 2 * RUNS
    assert counts.duplicates == {}
