"""Whether a tool call may run, decided before anything runs."""

from __future__ import annotations

from collections.abc import Collection

from loopline_events import ToolError, ToolErrorKind
from loopline_runtime import allows


def refusal(
    tool: str,
    agent: str,
    allowed: Collection[str] | None,
    known: Collection[str],
    missing: ToolError | None = None,
) -> ToolError | None:
    """The error to report instead of running `tool`, or None when it may run.

    `allowed` is the agent profile's tool list (None: the profile does not exist), where
    `SERVER__*` allows every tool of an MCP server. The model asked for the call; the profile
    decides, whatever the model asked. `missing`: why a tool that is not known is not, when
    that is known (an MCP server that is away, or that lists it with a broken schema).
    """
    if tool not in known:
        if missing is not None:
            return missing
        return ToolError(
            kind=ToolErrorKind.UNKNOWN_TOOL,
            message=f"there is no tool named {tool!r}; tools: {', '.join(sorted(known))}",
        )
    if allowed is None:
        return ToolError(
            kind=ToolErrorKind.FORBIDDEN,
            message=f"agent profile {agent!r} does not exist, so it may use no tool",
        )
    if not allows(allowed, tool):
        permitted = ", ".join(sorted(allowed)) or "none"
        return ToolError(
            kind=ToolErrorKind.FORBIDDEN,
            message=f"agent {agent!r} is not allowed to use {tool!r} (allowed: {permitted})",
        )
    return None
