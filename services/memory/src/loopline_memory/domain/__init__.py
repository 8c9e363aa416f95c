"""Memory's pure domain: the run state and the reducer that folds events into it."""

from loopline_memory.domain.reducer import Environment, Step, apply
from loopline_memory.domain.state import Emission, Phase, RunState, RunStatus

__all__ = ["Emission", "Environment", "Phase", "RunState", "RunStatus", "Step", "apply"]
