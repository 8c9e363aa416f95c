"""Guards on the real services: a secret in a tool call's arguments is redacted before the tool
runs, so neither the effect it records nor anything on agent.observations holds it; a call over
its spend limit is refused, and the model reads why; a guard that says `fail` ends the run with
reason `guard`; and a replay of each rebuilds memory's state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from loopline_bus import read_history
from loopline_events import (
    OBSERVATIONS,
    FailureReason,
    GuardTripped,
    RunCompleted,
    RunFailed,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)
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

SECRET = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"
AGENTS = (
    TEST_AGENTS
    + """
[agents.guarded]
system_prompt = "You record what you are told, and read texts."
model = "openai:gpt-test"
tools = ["record_effect", "long_text"]
max_steps = 4
deadline_s = 120

[agents.guarded.guards.redact_secrets]
messages = true

[agents.guarded.guards.spend_limit]
tool = "long_text"
argument = "chars"
max = 1000

[agents.strict]
system_prompt = "You record what you are told, and read texts."
model = "openai:gpt-test"
tools = ["record_effect", "long_text"]
max_steps = 4
deadline_s = 120

[agents.strict.guards.spend_limit]
tool = "long_text"
argument = "chars"
max = 1000
action = "fail"
"""
)


def scripted(request: RecordedRequest) -> dict[str, Any]:
    """Records a note holding a key and asks for a text too long, then says what it was told."""
    told = [m["content"] for m in request["messages"] if m["role"] == "tool"]
    if told:
        return text_completion(" | ".join(told))
    return tool_call_completion(
        [("record_effect", {"label": f"key {SECRET}"}), ("long_text", {"chars": 5000})]
    )


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(scripted) as running:
        yield running


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints, model_server: OpenAIServer) -> Iterator[System]:
    env = {"OPENAI_BASE_URL": model_server.base_url, "OPENAI_API_KEY": "sk-test"}
    with running_system(loopline_endpoints, env_extra=env, agents=AGENTS) as running:
        yield running


async def test_a_secret_never_reaches_the_tool_or_the_log_and_a_spend_over_its_limit_is_refused(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Note the key, then read the long text.", agent="guarded")
        outcome = await run.result(timeout=90)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload
    answer = outcome.payload.answer
    assert "recorded key [redacted]" in answer
    assert "guard 'spend_limit' refused the call" in answer
    assert SECRET not in answer

    observed = await read_history(system.kafka, [OBSERVATIONS.name], run.run_id)
    payloads = [r.event.payload for r in observed]
    assert SECRET not in json.dumps([p.model_dump(mode="json") for p in payloads])
    (recorded,) = [p for p in payloads if isinstance(p, ToolCallSucceeded)]
    assert recorded.output == "recorded key [redacted]"
    (refused,) = [p for p in payloads if isinstance(p, ToolCallFailed)]
    assert (refused.tool, refused.error.kind) == ("long_text", ToolErrorKind.GUARD)
    (trip,) = [p for p in payloads if isinstance(p, GuardTripped)]
    assert (trip.guard, trip.action, trip.call_id) == ("spend_limit", "tell", refused.call_id)

    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        labels = await conn.fetch(
            f'SELECT label FROM "{schema_name("effects", system.prefix)}".executions '
            "WHERE run_id = $1",
            run.run_id,
        )
    finally:
        await conn.close()
    assert [r["label"] for r in labels] == ["key [redacted]"]

    replayed = system.cli("replay", "--check", run.run_id)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == f"{run.run_id}  same"


async def test_a_tool_guard_that_says_fail_ends_the_run_with_reason_guard(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("Note the key, then read the long text.", agent="strict")
        outcome = await run.result(timeout=90)
    assert isinstance(outcome.payload, RunFailed), outcome.payload
    assert outcome.payload.reason is FailureReason.GUARD
    assert "guard 'spend_limit' (before_tool)" in outcome.payload.message
    replayed = system.cli("replay", "--check", run.run_id)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == f"{run.run_id}  same"


async def test_a_secret_in_the_goal_never_reaches_the_model(
    system: System, model_server: OpenAIServer
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit(f"My key is {SECRET}. Note it.", agent="guarded")
        outcome = await run.result(timeout=90)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload
    asked = [r for r in model_server.requests if "Note it." in json.dumps(r)]
    assert asked, "the model was never asked"
    assert SECRET not in json.dumps(asked)
    assert "My key is [redacted]. Note it." in json.dumps(asked)
