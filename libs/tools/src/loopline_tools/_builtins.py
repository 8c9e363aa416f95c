"""The tools every Loopline tool executor offers."""

from __future__ import annotations

from loopline_tools._calculator import calculator
from loopline_tools._clock import current_time
from loopline_tools._core import Tool
from loopline_tools._http_get import http_get
from loopline_tools._read_artifact import read_artifact

BUILTIN_TOOLS: tuple[Tool, ...] = (calculator, current_time, http_get, read_artifact)
"""`calculator`, `current_time`, `http_get` and `read_artifact`."""

__all__ = ["BUILTIN_TOOLS", "calculator", "current_time", "http_get", "read_artifact"]


SERVED_BY_MEMORY: frozenset[str] = frozenset({"remember", "recall", "delegate"})
"""Tools the memory service answers itself (it holds long-term memory, and starts and ends
runs: `delegate` hands a sub-task to another agent as a child run); the executor skips them."""
