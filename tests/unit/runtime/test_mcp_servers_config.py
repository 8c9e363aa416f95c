"""MCP servers declared in the agents file, and how profiles name their tools."""

from __future__ import annotations

import pytest
from loopline_runtime import (
    McpServersError,
    ProfileError,
    allows,
    expand,
    parse_mcp_servers,
    parse_profiles,
    server_of,
)
from loopline_runtime._profiles import check_tools

AGENTS = """
[mcp_servers.files]
command = "files-server"
args = ["--root", "/srv"]
env = { TOKEN = "${MCP_TEST_TOKEN}" }
[mcp_servers.files.tools.write]
effect = "side_effect"
timeout_s = 5

[mcp_servers.search]
url = "https://search.example/mcp"
headers = { Authorization = "Bearer ${MCP_TEST_TOKEN}" }

[agents.a]
system_prompt = "p"
tools = ["calculator", "files__*", "search__query"]
"""


def test_servers_are_read_from_the_agents_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TEST_TOKEN", "s3cret-token")
    servers = parse_mcp_servers(AGENTS)
    files, search = servers["files"], servers["search"]
    assert (files.transport, files.command, files.args) == (
        "stdio",
        "files-server",
        ("--root", "/srv"),
    )
    assert files.resolved_env() == {"TOKEN": "s3cret-token"}
    assert files.tools["write"].effect == "side_effect"
    assert search.transport == "http"
    assert search.resolved_headers() == {"Authorization": "Bearer s3cret-token"}


def test_an_unset_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_TEST_TOKEN", raising=False)
    with pytest.raises(McpServersError, match=r"\$\{MCP_TEST_TOKEN\} is used .* but unset"):
        parse_mcp_servers(AGENTS)["search"].resolved_headers()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[mcp_servers.x]\nargs = ["a"]', "give either `command`"),
        ('[mcp_servers.x]\ncommand = "c"\nurl = "http://h/mcp"', "give either `command`"),
        ('[mcp_servers.my_files]\ncommand = "c"', "String should match pattern"),
        ('[mcp_servers.x]\nurl = "ftp://h"', "String should match pattern"),
        ('[mcp_servers.x]\ncommand = "c"\n[mcp_servers.x.tools.t]\neffect = "risky"', "effect"),
        ('[mcp_servers.x]\ncommand = "c"\nport = 1', "Extra inputs are not permitted"),
    ],
)
def test_a_bad_server_table_names_the_server_and_the_problem(table: str, problem: str) -> None:
    with pytest.raises(McpServersError, match=problem) as raised:
        parse_mcp_servers(table, "agents.toml")
    assert str(raised.value).startswith("agents.toml: MCP server '")


def test_a_profile_may_name_tools_of_declared_servers_only() -> None:
    profiles = parse_profiles(AGENTS)
    check_tools(profiles, ["calculator"], "f", parse_mcp_servers(AGENTS.replace("${", "$")))
    with pytest.raises(ProfileError, match="'files__\\*', which no installed package provides"):
        check_tools(profiles, ["calculator"], "f", {})


def test_names_wildcards_and_expansion() -> None:
    assert server_of("files__read") == "files"
    assert server_of("calculator") is None
    assert server_of("files__") is None
    allowed = ("calculator", "files__*", "search__query")
    assert allows(allowed, "files__anything")
    assert allows(allowed, "search__query")
    assert not allows(allowed, "search__delete")
    assert not allows(allowed, "http_get")
    available = {
        "calculator",
        "http_get",
        "files__write",
        "files__read",
        "search__query",
        "search__x",
    }
    assert expand(allowed, available) == [
        "calculator",
        "files__read",
        "files__write",
        "search__query",
    ]
    assert expand(["files__read", "files__*"], available) == ["files__read", "files__write"]
