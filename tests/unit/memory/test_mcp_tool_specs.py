"""The model is shown an MCP server's tools as the profile allows them, by name or by
`SERVER__*`, from the servers' latest listings."""

from __future__ import annotations

from typing import Any

import mcp_types as mcp
from loopline_events import ContextAssembled, Envelope, GoalSubmitted, ToolSpec
from loopline_memory.adapters.environment import ToolSpecs
from loopline_memory.domain import Environment, apply
from loopline_runtime import AgentProfile, McpServerConfig
from loopline_tools import McpTools, ToolContext, tools_of

SERVER = McpServerConfig(name="files", command="files-server")
OBJECT = {"type": "object", "properties": {"path": {"type": "string"}}}


async def never(tool: str, arguments: dict[str, Any], ctx: ToolContext) -> mcp.CallToolResult:
    raise AssertionError("not called")


def catalog(*names: str) -> McpTools:
    """A catalog whose server `files` last listed `names` (nothing is connected)."""
    tools = McpTools({"files": SERVER})
    connection = tools.connections["files"]
    listed = [mcp.Tool(name=n, description=f"{n} a file", input_schema=OBJECT) for n in names]
    connection.listing = tools_of(SERVER, listed, never)
    tools._rebuild()
    return tools


def shown(env: Environment, agent: str) -> list[str]:
    step = apply(
        None, Envelope.of(GoalSubmitted(goal="go", agent=agent), run_id="r", producer="t"), env
    )
    context = next(e.payload for e in step.emissions if isinstance(e.payload, ContextAssembled))
    return [t.name for t in context.tools]


def test_a_context_shows_the_servers_tools_the_profile_allows() -> None:
    mcp_tools = catalog("write", "read")
    specs = ToolSpecs({"calculator": ToolSpec(name="calculator")}, mcp_tools)
    profiles = {
        "all": AgentProfile(name="all", system_prompt="p", tools=("calculator", "files__*")),
        "one": AgentProfile(name="one", system_prompt="p", tools=("files__read", "files__gone")),
    }
    env = Environment(profiles=profiles, tools=specs, trust_log=True)
    assert shown(env, "all") == ["calculator", "files__read", "files__write"]
    assert shown(env, "one") == ["files__read"]
    assert specs["files__read"].parameters == OBJECT
    assert specs["files__read"].description == "read a file"


def test_a_new_listing_shows_in_the_next_context() -> None:
    mcp_tools = catalog("read")
    specs = ToolSpecs({}, mcp_tools)
    env = Environment(
        profiles={"a": AgentProfile(name="a", system_prompt="p", tools=("files__*",))},
        tools=specs,
        trust_log=True,
    )
    assert shown(env, "a") == ["files__read"]
    connection = mcp_tools.connections["files"]
    listed = [mcp.Tool(name=n, input_schema=OBJECT) for n in ("read", "secret")]
    connection.listing = tools_of(SERVER, listed, never)
    mcp_tools._rebuild()
    assert shown(env, "a") == ["files__read", "files__secret"]
    assert "files__secret" in specs
    assert len(specs) == 2
