"""The tools of every configured MCP server, one connection each (`_mcp_connection`).

The `mcp` SDK is loaded with the first server: a service configured with none starts
without it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from loopline_events import ToolError, ToolErrorKind
from loopline_runtime import McpServerConfig, server_of

from loopline_tools._core import Tool

if TYPE_CHECKING:
    from loopline_tools._mcp_connection import McpConnection


class McpTools:
    """The tools of every configured MCP server, by namespaced name."""

    def __init__(self, servers: dict[str, McpServerConfig], *, mode: str = "auto") -> None:
        for config in servers.values():  # an unset ${VARIABLE} stops the service at start
            config.resolved_env()
            config.resolved_headers()
        self.connections: dict[str, McpConnection] = {}
        if servers:
            from loopline_tools._mcp_connection import McpConnection

            self.connections = {
                name: McpConnection(config, self._rebuild, mode=mode)
                for name, config in servers.items()
            }
        self._tools: dict[str, Tool] = {}
        self._rejected: dict[str, str] = {}
        self.version = 0
        """Grows by one with every change of the listing."""

    async def start(self, wait_s: float | None = None) -> None:
        """Connect to every server; wait up to `wait_s` (each server's connect timeout) for
        their first listings. A server that is away is not waited for any longer."""
        for connection in self.connections.values():
            connection.start()
        await asyncio.gather(*(c.ready(wait_s) for c in self.connections.values()))

    async def close(self) -> None:
        """Disconnect from every server."""
        await asyncio.gather(*(c.close() for c in self.connections.values()))

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, as last listed."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Every tool's name, sorted."""
        return sorted(self._tools)

    def rejected(self, name: str) -> str | None:
        """Why a server's tool of that name is not offered, if it was refused."""
        return self._rejected.get(name)

    async def find(self, name: str) -> Tool | None:
        """The tool called `name`; if its server has not listed its tools yet, after waiting
        for it to (at most its connect timeout)."""
        connection = self.connections.get(server_of(name) or "")
        if connection is not None and name not in self._tools:
            await connection.ready()
        return self._tools.get(name)

    def missing(self, name: str) -> ToolError | None:
        """Why `name`, a tool of a configured server, is not offered; None for other names."""
        connection = self.connections.get(server_of(name) or "")
        if connection is None:
            return None
        if name in self._rejected:
            return ToolError(kind=ToolErrorKind.UNKNOWN_TOOL, message=self._rejected[name])
        if not connection.up:
            message = (
                f"{name} cannot be offered now: MCP server {connection.config.name!r} is "
                f"unreachable ({connection.problem}); try again later"
            )
            return ToolError(kind=ToolErrorKind.UNKNOWN_TOOL, message=message, retryable=True)
        offered = ", ".join(
            sorted(t for t in self._tools if server_of(t) == connection.config.name)
        )
        message = (
            f"MCP server {connection.config.name!r} offers no tool named {name!r}; "
            f"it offers: {offered or 'none'}"
        )
        return ToolError(kind=ToolErrorKind.UNKNOWN_TOOL, message=message)

    def _rebuild(self) -> None:
        tools: dict[str, Tool] = {}
        rejected: dict[str, str] = {}
        for connection in self.connections.values():
            tools.update(connection.listing.tools)
            rejected.update(connection.listing.rejected)
        self._tools, self._rejected = tools, rejected
        self.version += 1
