"""MCP tools against real MCP servers (the `mcp` SDK's server, over stdio and streamable HTTP):
listed, called, and every way a server can let a call down turned into a typed tool error."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from loopline_events import ToolErrorKind
from loopline_runtime import McpServerConfig, McpToolSettings
from loopline_testing.mcp_server import HttpServer, effects_in, stdio_server
from loopline_tools import Effect, McpTools, ToolContext, run_tool

NO_ANSWER = re.compile(r"MCP server '\w+' (gave no answer|is unreachable)")
CTX = ToolContext(run_id="run-1", call_id="call-1")

Configure = Callable[..., McpServerConfig]


@pytest.fixture(params=["stdio", "http"])
async def configure(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Configure]:
    """A function returning the settings of a fresh test server over stdio or HTTP."""
    servers: list[HttpServer] = []

    def make(name: str = "t", **settings: object) -> McpServerConfig:
        if request.param == "stdio":
            return stdio_server(name, tmp_path / "effects", **settings)
        server = HttpServer(tmp_path / "effects")
        server.start()
        servers.append(server)
        return server.config(name, **settings)

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
async def open_tools() -> AsyncIterator[Callable[..., asyncio.Future[McpTools]]]:
    opened: list[McpTools] = []

    async def open_(*configs: McpServerConfig) -> McpTools:
        tools = McpTools({c.name: c for c in configs})
        await tools.start()
        opened.append(tools)
        return tools

    yield open_  # type: ignore[misc]
    for tools in opened:
        await tools.close()


async def test_tools_are_namespaced_with_effects_from_annotations(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    override = {"upsert": McpToolSettings(effect="side_effect", timeout_s=3)}
    tools = await open_tools(configure("files", tools=override))
    assert "files__echo" in tools.names()
    assert tools.get("echo") is None
    echo, record, upsert = (tools.get(f"files__{n}") for n in ("echo", "record", "upsert"))
    assert echo is not None
    assert echo.effect is Effect.PURE
    assert record is not None
    assert record.effect is Effect.SIDE_EFFECT
    assert upsert is not None
    assert upsert.effect is Effect.SIDE_EFFECT
    assert upsert.timeout_s == 3
    spec = echo.spec()
    assert spec.name == "files__echo"
    assert spec.parameters["properties"]["text"]["type"] == "string"


async def test_a_call_returns_the_servers_text(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure())
    add = tools.get("t__add")
    assert add is not None
    outcome = await run_tool(add, {"a": 2, "b": 40}, CTX)
    assert outcome.output == "42", outcome.error


async def test_a_call_carries_its_idempotency_key(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure())
    upsert = tools.get("t__upsert")
    assert upsert is not None
    outcome = await run_tool(upsert, {"key": "k", "value": "v"}, CTX)
    assert outcome.output == "k=v (idempotency key run-1:call-1)", outcome.error


async def test_arguments_that_break_the_schema_are_not_sent(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure())
    add = tools.get("t__add")
    assert add is not None
    outcome = await run_tool(add, {"a": "two"}, CTX)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert "'b' is a required property" in outcome.error.message


async def test_an_error_result_is_a_tool_error(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure())
    fail = tools.get("t__fail")
    assert fail is not None
    outcome = await run_tool(fail, {"reason": "the disk is full"}, CTX)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert "the disk is full" in outcome.error.message
    assert outcome.attempts == 1


async def test_a_slow_call_times_out(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure(timeout_s=0.5))
    slow = tools.get("t__slow")
    assert slow is not None
    outcome = await run_tool(slow, {"seconds": 30}, CTX, sleep=_no_wait)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.TIMEOUT
    assert outcome.attempts == 3  # read-only: retried by the tool's policy


async def test_an_oversized_result_is_too_large(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure())
    huge = tools.get("t__huge")
    assert huge is not None
    # Over the default limit of a million characters (the 10 MB of the issue: the e2e test).
    outcome = await run_tool(huge, {"megabytes": 2}, CTX)
    assert outcome.error is not None, "2 MB must not pass"
    assert outcome.error.kind is ToolErrorKind.TOO_LARGE
    assert "2097152 characters, more than the 1000000" in outcome.error.message
    # The connection survived it.
    echo = tools.get("t__echo")
    assert echo is not None
    assert (await run_tool(echo, {"text": "still here"}, CTX)).output == "still here"


async def test_a_schema_that_is_not_json_schema_is_refused_with_why(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure())
    assert tools.get("t__broken") is None
    why = tools.rejected("t__broken")
    assert why is not None
    assert "not valid JSON Schema" in why
    assert tools.get("t__echo") is not None  # the others are offered


async def test_a_tool_list_change_is_picked_up(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(configure())
    assert tools.get("t__secret") is None
    unlock = tools.get("t__unlock")
    assert unlock is not None
    assert (await run_tool(unlock, {}, CTX)).output == "unlocked"
    async with asyncio.timeout(10):
        while tools.get("t__secret") is None:  # noqa: ASYNC110 - relisted in the background
            await asyncio.sleep(0.05)
    secret = tools.get("t__secret")
    assert secret is not None
    assert (await run_tool(secret, {}, CTX)).output == "the secret is 42"


async def test_a_side_effect_runs_once_and_a_lost_call_is_an_unknown_outcome(
    configure: Configure, open_tools: Callable[..., asyncio.Future[McpTools]], tmp_path: Path
) -> None:
    tools = await open_tools(configure(timeout_s=0.5))
    record = tools.get("t__record")
    assert record is not None
    outcome = await run_tool(record, {"label": "late", "delay_s": 2}, CTX, sleep=_no_wait)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.UNKNOWN_OUTCOME
    assert outcome.attempts == 1  # never retried blind
    await asyncio.sleep(2.5)
    # The abandoned call is cancelled on the server, which may or may not have begun it.
    assert len(effects_in(tmp_path / "effects")) <= 1


async def test_a_stdio_server_that_dies_mid_call_is_an_error_then_restarted(
    tmp_path: Path, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(stdio_server("t"))
    crash, echo = tools.get("t__crash"), tools.get("t__echo")
    assert crash is not None
    assert echo is not None
    outcome = await run_tool(crash, {}, CTX, sleep=_no_wait)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    # The last retry meets the dead server, or its successor still starting.
    assert NO_ANSWER.search(outcome.error.message), outcome.error.message
    assert outcome.attempts == 3
    assert (await run_tool(echo, {"text": "back"}, CTX)).output == "back"


async def test_a_stdio_server_writing_what_is_not_json_is_an_error(
    tmp_path: Path, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    tools = await open_tools(stdio_server("t"))
    garble, echo = tools.get("t__garble"), tools.get("t__echo")
    assert garble is not None
    assert echo is not None
    outcome = await run_tool(garble, {}, CTX, sleep=_no_wait)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert (await run_tool(echo, {"text": "back"}, CTX)).output == "back"


async def test_an_http_server_killed_mid_call_is_an_error_and_its_restart_is_used(
    tmp_path: Path, open_tools: Callable[..., asyncio.Future[McpTools]]
) -> None:
    server = HttpServer()
    server.start()
    try:
        tools = await open_tools(server.config("t", connect_timeout_s=2))
        slow, echo = tools.get("t__slow"), tools.get("t__echo")
        assert slow is not None
        assert echo is not None
        call = asyncio.create_task(run_tool(slow, {"seconds": 30}, CTX, sleep=_no_wait))
        await asyncio.sleep(0.5)
        server.kill()
        outcome = await asyncio.wait_for(call, 20)
        assert outcome.error is not None
        assert outcome.error.kind is ToolErrorKind.EXECUTION
        assert outcome.error.retryable
        down = await run_tool(echo, {"text": "anyone?"}, CTX, sleep=_no_wait)
        assert down.error is not None
        assert "unreachable" in down.error.message
        server.start()
        async with asyncio.timeout(20):
            while (await run_tool(echo, {"text": "back"}, CTX)).output != "back":  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    finally:
        server.kill()


async def test_a_server_that_is_down_is_unreachable_not_unknown(
    open_tools: Callable[..., asyncio.Future[McpTools]],
) -> None:
    config = McpServerConfig(name="gone", command="/nonexistent/mcp-server", connect_timeout_s=0.5)
    tools = await open_tools(config)
    assert tools.names() == []
    connection = tools.connections["gone"]
    with pytest.raises(Exception, match="unreachable"):
        await connection.call("x", {}, CTX)


async def test_a_server_on_the_handshake_protocol_is_heard_too(tmp_path: Path) -> None:
    """Before 2026-07-28, a server tells of changes with `notifications/tools/list_changed`
    on the session, and a dead server is noticed by the calls and the transport."""
    tools = McpTools({"t": stdio_server("t")}, mode="legacy")
    await tools.start()
    try:
        assert tools.connections["t"].mode == "legacy"
        unlock, crash = tools.get("t__unlock"), tools.get("t__crash")
        assert unlock is not None
        assert crash is not None
        assert (await run_tool(unlock, {}, CTX)).output == "unlocked"
        async with asyncio.timeout(10):
            while tools.get("t__secret") is None:  # noqa: ASYNC110 - relisted in the background
                await asyncio.sleep(0.05)
        failed = await run_tool(crash, {}, CTX, sleep=_no_wait)
        assert failed.error is not None
        assert NO_ANSWER.search(failed.error.message), failed.error.message
        echo = tools.get("t__echo")
        assert echo is not None
        assert (await run_tool(echo, {"text": "back"}, CTX)).output == "back"
    finally:
        await tools.close()


async def _no_wait(_seconds: float) -> None:
    return None
