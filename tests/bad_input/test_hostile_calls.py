"""Bad input from the model: calls of tools that do not exist or are not allowed, hostile
arguments (a private-network URL, exponent bombs, arguments nested hundreds deep or not JSON
at all, arguments of the wrong shape) and a reply that is not valid JSON. The model speaks
through a real HTTP server that talks the OpenAI API.

Each call fails alone with a typed error the model reads in its next request, and the run goes
on to its answer; a reply the planner cannot read fails the run with the reason. (A reply that
is HTML rather than JSON: tests/e2e/test_openai_model.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from loopline_events import (
    FailureReason,
    RunCompleted,
    RunFailed,
    ToolCallFailed,
    ToolErrorKind,
)
from loopline_runtime import Endpoints
from loopline_testing import System, running_system
from loopline_testing.openai_server import OpenAIServer, ScriptedCall

from loopline.sdk import Loopline

AGENT = "openai_tools"
"""A test profile reasoned by the scripted model, with calculator, current_time and http_get."""


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints, server: OpenAIServer) -> Iterator[System]:
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        # As in production: tools may not reach private networks.
        "LOOPLINE_TOOLS_ALLOW_PRIVATE_NETWORKS": "0",
    }
    with running_system(loopline_endpoints, env_extra=env) as running:
        yield running


@dataclass(frozen=True)
class Hostile:
    """A call the model makes, and the error the run must report for it."""

    name: str
    tool: str
    arguments: dict[str, Any] | str
    kind: ToolErrorKind
    message: str


def nested(levels: int) -> dict[str, Any]:
    """`{"expression": [[[...]]]}`, `levels` deep."""
    return {"expression": json.loads("[" * levels + "]" * levels)}


HOSTILE = (
    Hostile(
        "unknown tool",
        "delete_everything",
        {"path": "/"},
        ToolErrorKind.UNKNOWN_TOOL,
        "there is no tool named 'delete_everything'",
    ),
    Hostile(
        "loopback URL",
        "http_get",
        {"url": "http://127.0.0.1:15432/"},
        ToolErrorKind.FORBIDDEN,
        "refusing to connect to 127.0.0.1: a loopback address",
    ),
    Hostile(
        "cloud metadata URL",
        "http_get",
        {"url": "http://169.254.169.254/latest/meta-data/"},
        ToolErrorKind.FORBIDDEN,
        "a link-local address",
    ),
    Hostile(
        "private network URL",
        "http_get",
        {"url": "http://10.1.2.3/admin"},
        ToolErrorKind.FORBIDDEN,
        "a private address",
    ),
    Hostile(
        "exponent bomb",
        "calculator",
        {"expression": "9**9**9**9"},
        ToolErrorKind.INVALID_ARGUMENTS,
        "exponents are limited to ±1000",
    ),
    Hostile(
        "result too large",
        "calculator",
        {"expression": "1e308 * 10"},
        ToolErrorKind.INVALID_ARGUMENTS,
        "the result is too large",
    ),
    Hostile(
        "number where text is expected",
        "calculator",
        '{"expression": 1e999}',
        ToolErrorKind.INVALID_ARGUMENTS,
        "expression: Input should be a valid string",
    ),
    Hostile(
        "a 5000-digit number",
        "calculator",
        '{"expression": ' + "9" * 5000 + "}",
        ToolErrorKind.INVALID_ARGUMENTS,
        "not a JSON object",
    ),
    Hostile(
        "arguments nested 100 deep",
        "calculator",
        nested(100),
        ToolErrorKind.INVALID_ARGUMENTS,
        "nested deeper than 32 levels",
    ),
    Hostile(
        "arguments nested 100000 deep",
        "calculator",
        "[" * 100_000 + "]" * 100_000,
        ToolErrorKind.INVALID_ARGUMENTS,
        "not a JSON object",
    ),
    Hostile(
        "arguments that are not JSON",
        "calculator",
        "{expression: 1 +",
        ToolErrorKind.INVALID_ARGUMENTS,
        "not a JSON object",
    ),
    Hostile(
        "arguments of the wrong shape",
        "calculator",
        {"expr": "2 + 2", "precision": 99},
        ToolErrorKind.INVALID_ARGUMENTS,
        "expression: Field required",
    ),
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.name)
async def test_a_hostile_call_fails_alone_and_the_model_is_told_why(
    system: System, server: OpenAIServer, hostile: Hostile
) -> None:
    call: ScriptedCall = (hostile.tool, hostile.arguments)
    server.reply_tool_calls([call, ("calculator", {"expression": "6 * 7"})])
    server.reply_text("Done, as far as I could.")
    async with Loopline(system.kafka, producer="bad-input") as client:
        run = await client.submit("Do as the script says.", agent=AGENT)
        steps = [e async for e in run.steps()]
        # The next run is served too: nothing is left stuck behind this one.
        server.reply_text("Next.")
        after = await (await client.submit("And now?", agent=AGENT)).result(timeout=60)

    failed = [e.payload for e in steps if isinstance(e.payload, ToolCallFailed)]
    assert [(f.tool, f.error.kind) for f in failed] == [(hostile.tool, hostile.kind)]
    assert hostile.message in failed[0].error.message
    outcome = steps[-1].payload
    assert isinstance(outcome, RunCompleted), outcome
    assert outcome.answer == "Done, as far as I could."
    told = [m["content"] for m in server.requests[-2]["messages"] if m["role"] == "tool"]
    assert told[0].startswith(f"error ({hostile.kind.value}): ")
    assert told[1] == "42"  # the good call of the same step ran
    assert isinstance(after.payload, RunCompleted)
    assert all(s.state == "running" for s in system.services.status())


@pytest.mark.timeout(120)
async def test_a_reply_that_is_not_valid_json_fails_the_run_with_the_reason(
    system: System, server: OpenAIServer
) -> None:
    # The planner streams: a stream whose chunk is cut in the middle of its JSON.
    server.reply_raw(
        200,
        b'data: {"choices": [{"index": 0, "delta": {"content": "The answer is\n\n',
        headers={"Content-Type": "text/event-stream"},
    )
    async with Loopline(system.kafka, producer="bad-input") as client:
        outcome = await (await client.submit("What is 6 * 7?", agent=AGENT)).result(timeout=60)
        server.reply_text("It is 42.")
        after = await (await client.submit("What is 6 * 7?", agent=AGENT)).result(timeout=60)
    assert isinstance(outcome.payload, RunFailed)
    assert outcome.payload.reason is FailureReason.MODEL_ERROR
    assert "malformed reply from the model API (JSONDecodeError" in outcome.payload.message
    assert isinstance(after.payload, RunCompleted)
    assert after.payload.answer == "It is 42."


async def test_a_tool_the_profile_lacks_is_refused_whatever_the_model_asks(system: System) -> None:
    async with Loopline(system.kafka, producer="bad-input") as client:
        run = await client.submit("What time is it?", agent="calculator")  # the demo model
        steps = [e async for e in run.steps()]
    refusals = [e.payload for e in steps if isinstance(e.payload, ToolCallFailed)]
    assert len(refusals) == 1
    assert refusals[0].tool == "current_time"
    assert refusals[0].error.kind is ToolErrorKind.FORBIDDEN
    assert "not allowed" in refusals[0].error.message
    outcome = steps[-1].payload
    assert isinstance(outcome, RunCompleted)
    assert "not allowed" in outcome.answer
