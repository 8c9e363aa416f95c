"""What the reducer consults besides events, loaded from configuration: profiles, tools and
the keys goals and commands are signed with."""

from __future__ import annotations

from loopline_runtime import load_profiles, load_signing
from loopline_tools import ToolRegistry

from loopline_memory.domain import MEMORY_TOOL_SPECS, Environment


def load_environment() -> Environment:
    """The environment memory runs with (LOOPLINE_AGENTS_FILE, installed tools,
    LOOPLINE_SIGNING_KEYS_FILE).

    Replays use the same function: a replay with other profiles or keys can diverge from the
    run.
    """
    registry = ToolRegistry.default()
    specs = (*registry.specs(), *MEMORY_TOOL_SPECS)  # memory serves remember, recall
    return Environment(
        profiles=load_profiles(tools=registry.offered()),
        tools={s.name: s for s in specs},
        keyring=load_signing().keyring(),
    )
