"""Whether a tool call may run, decided before anything runs."""

from __future__ import annotations

from collections.abc import Collection

from loopline_events import ToolError, ToolErrorKind


def refusal(
    tool: str, agent: str, allowed: Collection[str] | None, known: Collection[str]
) -> ToolError | None:
    """The error to report instead of running `tool`, or None when it may run.

    `allowed` is the agent profile's tool list (None: the profile does not exist). The model
    asked for the call; the profile decides, whatever the model asked.
    """
    if tool not in known:
        return ToolError(
            kind=ToolErrorKind.UNKNOWN_TOOL,
            message=f"there is no tool named {tool!r}; tools: {', '.join(sorted(known))}",
        )
    if allowed is None:
        return ToolError(
            kind=ToolErrorKind.FORBIDDEN,
            message=f"agent profile {agent!r} does not exist, so it may use no tool",
        )
    if tool not in allowed:
        permitted = ", ".join(sorted(allowed)) or "none"
        return ToolError(
            kind=ToolErrorKind.FORBIDDEN,
            message=f"agent {agent!r} is not allowed to use {tool!r} (allowed: {permitted})",
        )
    return None
