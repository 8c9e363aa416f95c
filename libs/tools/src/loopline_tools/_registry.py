"""The tools a process offers, by name; plugins add theirs through entry points."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Iterator

from loopline_events import ToolSpec

from loopline_tools._builtins import BUILTIN_TOOLS, SERVED_BY_MEMORY
from loopline_tools._core import Tool

ENTRY_POINT_GROUP = "loopline.tools"
"""Packages offer tools under this entry point group."""


class ToolRegistry:
    """Tools by name: what the executor can run and what the model is shown."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Tool) -> None:
        """Add a tool; a second tool with the same name is a `ValueError`."""
        if not isinstance(tool, Tool):
            raise TypeError(f"not a Tool: {tool!r}")
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, if there is one."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Names of every tool, sorted."""
        return sorted(self._tools)

    def offered(self) -> list[str]:
        """Every tool an agent profile may list: these, and those memory serves itself."""
        return sorted({*self._tools, *SERVED_BY_MEMORY})

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def specs(self, names: Iterable[str] | None = None) -> tuple[ToolSpec, ...]:
        """Specs of the named tools, in the order given (all of them, sorted, for `None`).

        Unknown names are skipped: an agent profile may name a tool this process lacks.
        """
        wanted = self.names() if names is None else list(dict.fromkeys(names))
        return tuple(self._tools[n].spec() for n in wanted if n in self._tools)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register the tools that installed packages offer under `group`; return their names.

        Each entry point loads to a `Tool`, an iterable of tools, or a zero-argument callable
        returning either. Nothing is registered unless all of them load and no name clashes.
        """
        found: list[Tool] = []
        for entry_point in importlib.metadata.entry_points(group=group):
            try:
                found.extend(_tools_of(entry_point.load()))
            except Exception as exc:
                exc.add_note(
                    f"loading tools from entry point {entry_point.name!r} "
                    f"({entry_point.value}) in group {group!r}"
                )
                raise
        staged = ToolRegistry(self._tools.values())
        for t in found:
            staged.register(t)
        self._tools = staged._tools
        return [t.name for t in found]

    @classmethod
    def default(cls) -> ToolRegistry:
        """The built-in tools and every tool installed packages offer."""
        registry = cls(BUILTIN_TOOLS)
        registry.load_entry_points()
        return registry


def _tools_of(loaded: object) -> Iterator[Tool]:
    if not isinstance(loaded, Tool) and callable(loaded):
        loaded = loaded()
    if isinstance(loaded, Tool):
        yield loaded
        return
    if isinstance(loaded, Iterable) and not isinstance(loaded, str | bytes):
        for item in loaded:
            if not isinstance(item, Tool):
                raise TypeError(f"expected a Tool, got {item!r}")
            yield item
        return
    raise TypeError(
        f"expected a Tool, an iterable of Tools or a callable returning one, got {loaded!r}"
    )
