"""What the reducer consults besides events, loaded from configuration: profiles and tools."""

from __future__ import annotations

from loopline_runtime import load_profiles
from loopline_tools import ToolRegistry

from loopline_memory.domain import MEMORY_TOOL_SPECS, Environment


def load_environment() -> Environment:
    """The environment memory runs with (LOOPLINE_AGENTS_FILE, installed tools).

    Replays use the same function: a replay with other profiles can diverge from the run.
    """
    registry = ToolRegistry.default()
    specs = (*registry.specs(), *MEMORY_TOOL_SPECS)  # memory serves remember, recall
    return Environment(
        profiles=load_profiles(tools=registry.offered()), tools={s.name: s for s in specs}
    )
