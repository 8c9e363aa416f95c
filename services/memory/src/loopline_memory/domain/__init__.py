"""Memory's pure domain: the run state and the reducer that folds events into it."""

from loopline_memory.domain.reducer import Environment, Step, apply
from loopline_memory.domain.served import MEMORY_TOOL_SPECS
from loopline_memory.domain.state import (
    Emission,
    Phase,
    RecallRequest,
    Request,
    RunState,
    RunStatus,
    StoreMemory,
)

__all__ = [
    "MEMORY_TOOL_SPECS",
    "Emission",
    "Environment",
    "Phase",
    "RecallRequest",
    "Request",
    "RunState",
    "RunStatus",
    "Step",
    "StoreMemory",
    "apply",
]
