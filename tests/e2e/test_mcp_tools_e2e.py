"""Runs that call the tools of real MCP servers (the `mcp` SDK's server, one over stdio started
by the services, one over streamable HTTP started by the test), with the four services as
processes and the model a scripted OpenAI-compatible server.

A run calls tools of both servers and completes; a server that dies mid-call or answers 10 MB
is a typed tool error and the run goes on, and so are a line that is not JSON and a tool whose
schema is not JSON Schema; a tool the server adds is shown to the model in
the next run; a side-effecting MCP tool runs at most once when the tool-executor is killed
with SIGKILL in the middle of it.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopline_events import (
    ModelDecided,
    RunCompleted,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)
from loopline_runtime import Endpoints
from loopline_testing import System, running_system
from loopline_testing.mcp_server import HttpServer, effects_in
from loopline_testing.openai_server import OpenAIServer

from loopline.sdk import Loopline

AGENT = "mcp"
NO_ANSWER = re.compile(r"MCP server '\w+' (gave no answer|is unreachable)")


@pytest.fixture(scope="module")
def effects() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mcp-effects-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def remote(effects: Path) -> Iterator[HttpServer]:
    with HttpServer(effects / "remote") as server:
        yield server


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def agents(remote: HttpServer, effects: Path) -> str:
    """A profile reasoned by the scripted model that may use the tools of both servers."""
    return f"""
[mcp_servers.local]
command = "{sys.executable}"
args = ["-m", "loopline_testing.mcp_server", "--effects", "{effects / "local"}"]
timeout_s = 10
connect_timeout_s = 5

[mcp_servers.remote]
url = "{remote.url}"
timeout_s = 10
connect_timeout_s = 5

[agents.{AGENT}]
system_prompt = "You use the tools of MCP servers."
model = "openai:gpt-test"
tools = ["calculator", "local__*", "remote__*"]
max_steps = 6
deadline_s = 240
step_timeout_s = 60
"""


@pytest.fixture(scope="module")
def system(
    loopline_endpoints: Endpoints, model: OpenAIServer, remote: HttpServer, effects: Path
) -> Iterator[System]:
    env = {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "sk-test"}
    with running_system(
        loopline_endpoints, env_extra=env, agents=agents(remote, effects)
    ) as running:
        yield running


async def run_steps(system: System, goal: str) -> list[Any]:
    """The payloads of a run of the MCP agent, to its end."""
    async with Loopline(system.kafka, producer="mcp-e2e") as client:
        run = await client.submit(goal, agent=AGENT)
        return [e.payload async for e in run.steps()]


def tool_names(request: dict[str, Any]) -> set[str]:
    """The tools a model request offered."""
    return {t["function"]["name"] for t in request.get("tools", [])}


@pytest.mark.timeout(180)
async def test_a_run_calls_tools_of_a_stdio_and_an_http_server(
    system: System, model: OpenAIServer
) -> None:
    model.reply_tool_calls([("local__add", {"a": 2, "b": 40}), ("remote__echo", {"text": "hi"})])
    model.reply_text("42, and the echo said hi.")
    steps = await run_steps(system, "Add 2 and 40, and echo hi.")

    done = {p.tool: p.output for p in steps if isinstance(p, ToolCallSucceeded)}
    assert done == {"local__add": "42", "remote__echo": "hi"}
    assert isinstance(steps[-1], RunCompleted), steps[-1]
    offered = tool_names(model.requests[-2])
    assert {"calculator", "local__add", "remote__echo", "remote__record"} <= offered
    assert "local__broken" not in offered  # its schema is not JSON Schema
    told = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert told == ["42", "hi"]


@pytest.mark.timeout(180)
async def test_a_server_dying_mid_call_is_a_tool_error_and_the_run_goes_on(
    system: System, model: OpenAIServer
) -> None:
    model.reply_tool_calls([("local__crash", {})])
    model.reply_tool_calls([("local__echo", {"text": "back"})])
    model.reply_text("The server came back.")
    steps = await run_steps(system, "Crash the server, then echo.")

    failed = [p for p in steps if isinstance(p, ToolCallFailed)]
    assert [(f.tool, f.error.kind) for f in failed] == [("local__crash", ToolErrorKind.EXECUTION)]
    # The last retry meets the dead server, or its successor still starting.
    assert NO_ANSWER.search(failed[0].error.message), failed[0].error.message
    assert [p.output for p in steps if isinstance(p, ToolCallSucceeded)] == ["back"]
    assert isinstance(steps[-1], RunCompleted), steps[-1]
    assert all(s.state == "running" for s in system.services.status())


@pytest.mark.timeout(180)
async def test_a_10_mb_result_is_a_clear_error(system: System, model: OpenAIServer) -> None:
    model.reply_tool_calls([("remote__huge", {"megabytes": 10})])
    model.reply_text("Too much.")
    steps = await run_steps(system, "Fetch a lot.")

    failed = [p for p in steps if isinstance(p, ToolCallFailed)]
    assert [(f.tool, f.error.kind) for f in failed] == [("remote__huge", ToolErrorKind.TOO_LARGE)]
    assert "max_output_chars" in failed[0].error.message
    assert isinstance(steps[-1], RunCompleted), steps[-1]


@pytest.mark.timeout(180)
async def test_not_json_and_a_broken_schema_are_clear_errors(
    system: System, model: OpenAIServer
) -> None:
    model.reply_tool_calls([("local__garble", {}), ("remote__broken", {"x": 1})])
    model.reply_tool_calls([("local__echo", {"text": "still here"})])
    model.reply_text("Both were refused.")
    steps = await run_steps(system, "Call the broken tools.")

    failed = {p.tool: p.error for p in steps if isinstance(p, ToolCallFailed)}
    assert failed["local__garble"].kind is ToolErrorKind.EXECUTION
    assert failed["remote__broken"].kind is ToolErrorKind.UNKNOWN_TOOL
    assert "not valid JSON Schema" in failed["remote__broken"].message
    assert [p.output for p in steps if isinstance(p, ToolCallSucceeded)] == ["still here"]
    assert isinstance(steps[-1], RunCompleted), steps[-1]


@pytest.mark.timeout(180)
async def test_a_tool_the_server_adds_is_offered_in_the_next_run(
    system: System, model: OpenAIServer
) -> None:
    model.reply_tool_calls([("remote__unlock", {})])
    model.reply_text("Unlocked.")
    first = await run_steps(system, "Unlock the secret.")
    assert isinstance(first[-1], RunCompleted), first[-1]
    assert "remote__secret" not in tool_names(model.requests[-2])

    model.reply_tool_calls([("remote__secret", {})])
    model.reply_text("It is 42.")
    second = await run_steps(system, "Tell the secret.")

    assert "remote__secret" in tool_names(model.requests[-2])
    done = [p.output for p in second if isinstance(p, ToolCallSucceeded)]
    assert done == ["the secret is 42"]
    assert isinstance(second[-1], RunCompleted), second[-1]


@pytest.mark.timeout(240)
async def test_a_side_effect_runs_at_most_once_when_the_executor_is_killed_mid_call(
    system: System, model: OpenAIServer, effects: Path
) -> None:
    label = "kill-9"
    model.reply_tool_calls([("remote__record", {"label": label, "delay_s": 3})])
    model.reply_text("Recorded, or told why not.")
    async with Loopline(system.kafka, producer="mcp-e2e") as client:
        run = await client.submit("Record one effect.", agent=AGENT)
        steps: list[Any] = []
        async for event in run.steps():
            steps.append(event.payload)
            if isinstance(event.payload, ModelDecided) and event.payload.tool_calls:
                # The executor has the decision; a second in, its call waits on the server.
                await asyncio.sleep(1.0)
                system.kill("tool-executor")
                await system.restart("tool-executor")

    outcome = [p for p in steps if isinstance(p, ToolCallSucceeded | ToolCallFailed)]
    assert len(outcome) == 1, outcome
    recorded = [e for e in effects_in(effects / "remote") if e["label"] == label]
    if isinstance(outcome[0], ToolCallFailed):
        # The restarted executor found the call started and never finished: not run again.
        assert outcome[0].error.kind is ToolErrorKind.UNKNOWN_OUTCOME
        assert len(recorded) <= 1
    else:
        assert len(recorded) == 1
    assert isinstance(steps[-1], RunCompleted), steps[-1]


@pytest.mark.timeout(240)
async def test_an_http_server_killed_mid_call_is_an_error_and_its_restart_is_used(
    system: System, model: OpenAIServer, remote: HttpServer
) -> None:
    model.reply_tool_calls([("remote__slow", {"seconds": 30})])
    model.reply_tool_calls([("remote__echo", {"text": "after the restart"})])
    model.reply_text("The server is back.")
    async with Loopline(system.kafka, producer="mcp-e2e") as client:
        run = await client.submit("Wait on the server, then echo.", agent=AGENT)
        steps: list[Any] = []
        killed = False
        async for event in run.steps():
            steps.append(event.payload)
            if isinstance(event.payload, ModelDecided) and not killed:
                await asyncio.sleep(1.0)  # the call is under way on the server
                remote.kill()
                killed = True
            if isinstance(event.payload, ToolCallFailed) and not remote.running:
                remote.start()  # same port: the services must find it again

    failed = [p for p in steps if isinstance(p, ToolCallFailed)]
    assert [f.tool for f in failed] == ["remote__slow"]
    assert failed[0].error.kind in (ToolErrorKind.EXECUTION, ToolErrorKind.TIMEOUT)
    done = [p.output for p in steps if isinstance(p, ToolCallSucceeded)]
    assert done == ["after the restart"]
    assert isinstance(steps[-1], RunCompleted), steps[-1]
