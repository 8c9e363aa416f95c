"""The profile decides which MCP tools an agent may call: by name or by `SERVER__*`."""

from __future__ import annotations

from loopline_events import ToolError, ToolErrorKind
from loopline_tool_executor.domain import refusal

KNOWN = ["calculator", "files__read", "files__write", "search__query"]
ALLOWED = ("calculator", "files__*")


def test_a_servers_wildcard_allows_its_tools_and_no_others() -> None:
    assert refusal("files__write", "a", ALLOWED, KNOWN) is None
    refused = refusal("search__query", "a", ALLOWED, KNOWN)
    assert refused is not None
    assert refused.kind is ToolErrorKind.FORBIDDEN
    assert "calculator, files__*" in refused.message


def test_a_tool_its_server_cannot_offer_is_refused_with_the_servers_reason() -> None:
    why = ToolError(kind=ToolErrorKind.UNKNOWN_TOOL, message="files is unreachable", retryable=True)
    assert refusal("files__delete", "a", ALLOWED, KNOWN, why) == why
    unknown = refusal("files__delete", "a", ALLOWED, KNOWN)
    assert unknown is not None
    assert "there is no tool named 'files__delete'" in unknown.message
