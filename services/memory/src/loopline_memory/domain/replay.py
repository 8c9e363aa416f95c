"""Folding a run's recorded events through the reducer: its state at the end or at step k."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loopline_events import CONTROL, DECISIONS, GOALS, OBSERVATIONS, Envelope

from loopline_memory.domain.reducer import Environment, apply
from loopline_memory.domain.state import Emission, RunState

MEMORY_INPUTS: tuple[str, ...] = (GOALS.name, CONTROL.name, DECISIONS.name, OBSERVATIONS.name)
"""The topics memory folds; a run's state is a function of its events on these."""


@dataclass
class Replay:
    """A run's state rebuilt from its events."""

    state: RunState | None = None
    folded: int = 0
    """Events that changed the state."""
    ignored: int = 0
    """Events the reducer ignored (duplicates, stale results), as memory did live."""
    emissions: list[tuple[Envelope[Any], Emission]] = field(default_factory=list)
    """What each event caused memory to emit, with its cause."""


class StepNotReachedError(LookupError):
    """The run never reached the asked-for step."""


class NoGoalError(LookupError):
    """The log holds events of the run, but not the goal (or fork) that starts it."""


def fold(
    events: Iterable[Envelope[Any]], env: Environment, *, at_step: int | None = None
) -> Replay:
    """Fold `events` (one run's, in log order) into its state.

    With `at_step`, stop as soon as memory would have assembled the context of that step: the
    state then is what the agent knew when it took step k.
    """
    replay = Replay()
    for event in events:
        step = apply(replay.state, event, env)
        if not step.changed:
            replay.ignored += 1
            continue
        replay.state = step.state
        replay.folded += 1
        replay.emissions += [(event, e) for e in step.emissions]
        if at_step is not None and replay.state is not None and replay.state.step >= at_step:
            return replay
    if replay.state is None:
        raise NoGoalError(f"{replay.ignored} event(s) of the run, but no goal that starts it")
    if at_step is not None:
        reached = replay.state.step
        raise StepNotReachedError(f"the run reached step {reached}, not step {at_step}")
    return replay
