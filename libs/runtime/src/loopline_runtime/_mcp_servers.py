"""MCP tool servers, declared beside the agent profiles, and how their tools are named.

An agents file may hold `[mcp_servers.NAME]` tables: a stdio server (a `command` with `args`
and `env`) or a streamable HTTP server (a `url` with `headers`). Each tool a server offers is
known to agents as `NAME__TOOL`, so two servers cannot shadow each other or a built-in, and a
profile allows one tool by that name or every tool of a server with `NAME__*`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loopline_runtime._errors import ConfigurationError
from loopline_runtime._secrets import register_secrets

SEPARATOR = "__"
"""Between a server's name and its tool's name: `files__read_file`."""
WILDCARD = "*"
"""`files__*` in a profile allows every tool of the server `files`."""
SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
"""Letters, digits and inner hyphens: no underscore, so `NAME__TOOL` splits one way only."""
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Effect = Literal["pure", "idempotent", "side_effect"]


class McpToolSettings(BaseModel):
    """What the profile says of one tool of a server, over what the server says of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effect: Effect | None = Field(
        default=None,
        description="`pure`, `idempotent` or `side_effect`; unset: from the server's "
        "annotations (readOnlyHint: pure, idempotentHint: idempotent, else side_effect).",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, description="Longest wait for one call; unset: the server's."
    )


class McpServerConfig(BaseModel):
    """One MCP server: how to reach it and how far to trust and wait for its tools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=SERVER_NAME.pattern,
        description="The server's name, the prefix of its tools' names (`NAME__TOOL`).",
    )
    command: str | None = Field(
        default=None, description="stdio: the program to start; it speaks MCP on stdin/stdout."
    )
    args: tuple[str, ...] = Field(default=(), description="stdio: the program's arguments.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="stdio: variables added to the program's environment; `${NAME}` in a "
        "value is replaced by the variable NAME of Loopline's own environment.",
    )
    cwd: str | None = Field(default=None, description="stdio: the program's working directory.")
    url: str | None = Field(
        default=None, pattern=r"^https?://", description="Streamable HTTP: the server's URL."
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Streamable HTTP: headers of every request (`${NAME}` as in `env`), "
        'e.g. `Authorization = "Bearer ${FILES_TOKEN}"`.',
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Longest wait for one call.")
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait to connect (and list tools) before a call; keep it below "
        "`timeout_s`, within which a call waits for its connection.",
    )
    max_output_chars: int = Field(
        default=1_000_000,
        ge=1,
        description="Longest result accepted; a longer one is a `too_large` tool error.",
    )
    tools: dict[str, McpToolSettings] = Field(
        default_factory=dict, description="Per tool, by the server's own name for it."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either `command` (stdio) or `url` (streamable HTTP)")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """`stdio` for a command, `http` for a URL."""
        return "stdio" if self.command is not None else "http"

    def resolved_env(self) -> dict[str, str]:
        """`env` with `${NAME}` replaced from this process's environment."""
        return {key: expand_variables(value) for key, value in self.env.items()}

    def resolved_headers(self) -> dict[str, str]:
        """`headers` with `${NAME}` replaced from this process's environment."""
        return {key: expand_variables(value) for key, value in self.headers.items()}


class McpServersError(ConfigurationError):
    """An `[mcp_servers]` table that is invalid."""


def expand_variables(value: str) -> str:
    """`value` with every `${NAME}` replaced by the environment variable NAME (which must be
    set); the values so taken are secrets from then on (`redact` masks them)."""

    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise McpServersError(f"${{{name}}} is used in an MCP server's settings but unset")
        register_secrets([os.environ[name]])
        return os.environ[name]

    return _VARIABLE.sub(variable, value)


def parse_mcp_servers(text: str, source: str = "agents file") -> dict[str, McpServerConfig]:
    """MCP servers by name from the TOML text of an agents file (none if it declares none)."""
    try:
        tables = tomllib.loads(text).get("mcp_servers", {})
    except tomllib.TOMLDecodeError as exc:
        raise McpServersError(f"{source}: not valid TOML: {exc}") from None
    servers = {}
    for name, table in tables.items():
        try:
            servers[name] = McpServerConfig(name=name, **table)
        except (ValidationError, TypeError) as exc:
            raise McpServersError(f"{source}: MCP server {name!r}: {exc}") from None
    return servers


def mcp_tool_name(server: str, tool: str) -> str:
    """The name agents know a server's tool by."""
    return f"{server}{SEPARATOR}{tool}"


def server_of(name: str) -> str | None:
    """The server a namespaced tool name belongs to; None for a name without a namespace."""
    server, separator, rest = name.partition(SEPARATOR)
    return server if separator and rest else None


def allows(allowed: Collection[str], tool: str) -> bool:
    """Whether a profile's tool list allows `tool`, by its name or its server's wildcard."""
    if tool in allowed:
        return True
    server = server_of(tool)
    return server is not None and mcp_tool_name(server, WILDCARD) in allowed


def expand(allowed: Iterable[str], available: Collection[str]) -> list[str]:
    """The tools of `available` a profile's list names, in its order; a wildcard stands for
    its server's tools, sorted. Names not available are left out."""
    chosen: dict[str, None] = {}
    for entry in allowed:
        server = server_of(entry)
        if server is not None and entry == mcp_tool_name(server, WILDCARD):
            prefix = mcp_tool_name(server, "")
            chosen.update(dict.fromkeys(sorted(n for n in available if n.startswith(prefix))))
        elif entry in available:
            chosen[entry] = None
    return list(chosen)


def offered_by_servers(tool: str, servers: Mapping[str, McpServerConfig]) -> bool:
    """Whether `tool` (a name or a wildcard) belongs to a declared server: whether it exists
    is only known once the server is asked."""
    server = server_of(tool)
    return server is not None and server in servers
