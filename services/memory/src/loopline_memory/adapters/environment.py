"""What the reducer consults besides events, loaded from configuration: profiles, tools and
the keys goals and commands are signed with."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from loopline_events import ToolSpec
from loopline_runtime import load_profiles, load_signing
from loopline_tools import McpTools, ToolRegistry

from loopline_memory.domain import MEMORY_TOOL_SPECS, Environment


class ToolSpecs(Mapping[str, ToolSpec]):
    """The specs of the installed tools, and of the MCP servers' tools as last listed: a
    server's new listing shows in the next context without a restart."""

    def __init__(self, fixed: Mapping[str, ToolSpec], mcp: McpTools | None = None) -> None:
        self._fixed = dict(fixed)
        self._mcp = mcp

    def __getitem__(self, name: str) -> ToolSpec:
        if name in self._fixed:
            return self._fixed[name]
        tool = self._mcp.get(name) if self._mcp is not None else None
        if tool is None:
            raise KeyError(name)
        return tool.spec()

    def __iter__(self) -> Iterator[str]:
        yield from self._fixed
        if self._mcp is not None:
            yield from (n for n in self._mcp.names() if n not in self._fixed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        if name in self._fixed:
            return True
        return isinstance(name, str) and self._mcp is not None and self._mcp.get(name) is not None


def load_environment(mcp: McpTools | None = None) -> Environment:
    """The environment memory runs with (LOOPLINE_AGENTS_FILE, installed tools, the tools of
    the MCP servers `mcp` is connected to, LOOPLINE_SIGNING_KEYS_FILE).

    Replays use the same function: a replay with other profiles or keys can diverge from the
    run.
    """
    registry = ToolRegistry.default()
    specs = (*registry.specs(), *MEMORY_TOOL_SPECS)  # memory serves remember, recall, delegate
    return Environment(
        profiles=load_profiles(tools=registry.offered()),
        tools=ToolSpecs({s.name: s for s in specs}, mcp),
        keyring=load_signing().keyring(),
    )
