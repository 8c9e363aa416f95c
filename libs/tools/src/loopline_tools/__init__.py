"""Loopline tools: declare a tool with a pydantic arguments model, an effect class, a timeout
and a retry policy; run it safely; and the safe built-ins.

```python
class AddArgs(BaseModel):
    a: int
    b: int

@tool(effect=Effect.PURE)
async def add(args: AddArgs, ctx: ToolContext) -> str:
    \"\"\"Add two integers.\"\"\"
    return str(args.a + args.b)

outcome = await run_tool(add, {"a": 1, "b": 2}, ToolContext(run_id="r", call_id="c"))
```
"""

import importlib
from typing import TYPE_CHECKING, Any

from loopline_tools._builtins import BUILTIN_TOOLS, SERVED_BY_MEMORY
from loopline_tools._core import (
    ArtifactReader,
    Effect,
    Reconcile,
    RetryPolicy,
    Tool,
    ToolContext,
    ToolFailure,
)
from loopline_tools._decorator import tool
from loopline_tools._mcp_client import McpTools
from loopline_tools._registry import ToolRegistry
from loopline_tools._run import ToolOutcome, run_tool

if TYPE_CHECKING:
    from loopline_tools._mcp_connection import McpConnection
    from loopline_tools._mcp_mapping import Listing, effect_of, render, schema_problem, tools_of

_MCP = {
    "McpConnection": "_mcp_connection",
    "Listing": "_mcp_mapping",
    "effect_of": "_mcp_mapping",
    "render": "_mcp_mapping",
    "schema_problem": "_mcp_mapping",
    "tools_of": "_mcp_mapping",
}
"""What needs the `mcp` SDK, loaded when first asked for: most services use no MCP server."""


def __getattr__(name: str) -> Any:
    module = _MCP.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BUILTIN_TOOLS",
    "SERVED_BY_MEMORY",
    "ArtifactReader",
    "Effect",
    "Listing",
    "McpConnection",
    "McpTools",
    "Reconcile",
    "RetryPolicy",
    "Tool",
    "ToolContext",
    "ToolFailure",
    "ToolOutcome",
    "ToolRegistry",
    "effect_of",
    "render",
    "run_tool",
    "schema_problem",
    "tool",
    "tools_of",
]
