"""An agents file naming a tool nothing provides is refused when it is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopline_runtime import ProfileError, load_profiles
from loopline_tools import ToolRegistry

AGENTS = """
[agents.researcher]
system_prompt = "Look things up."
tools = ["calculator", "web_search"]

[agents.clerk]
system_prompt = "Keep notes."
tools = ["remember", "recall"]
"""


def test_a_profile_naming_an_unknown_tool_is_refused_with_the_installed_tools(
    tmp_path: Path,
) -> None:
    agents = tmp_path / "agents.toml"
    agents.write_text(AGENTS)
    offered = ToolRegistry.default().offered()
    with pytest.raises(ProfileError) as refused:
        load_profiles(agents, tools=offered)
    message = str(refused.value)
    assert str(agents) in message
    assert "agent 'researcher' lists tool 'web_search', which no installed package provides" in (
        message
    )
    installed = message.split("(installed tools: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"calculator", "current_time", "http_get", "read_artifact", "recall"} <= set(installed)
    assert "clerk" not in message  # memory serves remember and recall


def test_without_tools_to_check_against_profiles_load_as_written(tmp_path: Path) -> None:
    agents = tmp_path / "agents.toml"
    agents.write_text(AGENTS)
    assert load_profiles(agents)["researcher"].tools == ("calculator", "web_search")


def test_the_built_in_profiles_use_only_installed_tools() -> None:
    assert load_profiles(tools=ToolRegistry.default().offered())
