"""Folding a run's recorded events through the reducer: its state at the end or at step k."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from loopline_events import (
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    Envelope,
    GoalRejected,
    MemoryOutput,
)

from loopline_memory.domain.reducer import Environment, Step, apply
from loopline_memory.domain.state import Emission, RunState

MEMORY_INPUTS: tuple[str, ...] = (GOALS.name, CONTROL.name, DECISIONS.name, OBSERVATIONS.name)
"""The topics memory folds; a run's state is a function of its events on these."""

MEMORY_OUTPUTS: tuple[str, ...] = (CONTEXTS.name, RESULTS.name)
"""The topics of memory's own events of a run, which journal the order it folded inputs in."""


def in_folding_order(log: Iterable[tuple[str, Envelope[Any]]]) -> list[Envelope[Any]]:
    """A run's inputs in the order memory folded them, from its events as the log holds them
    (`(topic, event)`, in log order, of memory's input and output topics).

    Inputs come from four topics, and their order in the log is not the order memory read
    them in (a cancel and a tool result produced a millisecond apart can reach it either
    way). Memory's contexts and result journal that order (`MemoryOutput.folded`): inputs
    are taken as they journal them, then the rest (folded after memory's last output, or
    ignored by it) in log order. A goal memory rejected (its `GoalRejected` names it) is not
    taken: whoever replays, with the signing keys or without, folds what memory accepted.
    """
    inputs: list[Envelope[Any]] = []
    contexts: list[Envelope[Any]] = []
    results: list[Envelope[Any]] = []
    rejected: set[UUID] = set()
    for topic, event in log:
        if topic in MEMORY_INPUTS:
            inputs.append(event)
        elif isinstance(event.payload, MemoryOutput):  # the end comes after every context
            (contexts if topic == CONTEXTS.name else results).append(event)
        elif isinstance(event.payload, GoalRejected) and event.causation_id is not None:
            rejected.add(event.causation_id)
    by_id: dict[UUID, Envelope[Any]] = {}
    for event in inputs:
        by_id.setdefault(event.event_id, event)
    ordered: list[Envelope[Any]] = []
    taken: set[UUID] = set(rejected)
    for output in (*contexts, *results):
        for event_id in output.payload.folded:
            journaled = by_id.get(event_id)
            if journaled is not None and event_id not in taken:
                ordered.append(journaled)
                taken.add(event_id)
    ordered += [e for e in inputs if e.event_id not in taken]
    return ordered


def rejections(log: Iterable[tuple[str, Envelope[Any]]]) -> list[GoalRejected]:
    """What memory answered the run's rejected goals, in log order."""
    return [e.payload for _, e in log if isinstance(e.payload, GoalRejected)]


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


def folding(
    events: Iterable[Envelope[Any]], env: Environment, state: RunState | None = None
) -> Iterator[tuple[Envelope[Any], Step]]:
    """The one loop over a run's events: each event with what folding it did, the state
    carried from one to the next. Replay, re-run and rebuild all fold through it; memory's
    handler folds its events one at a time with the same `apply`."""
    for event in events:
        step = apply(state, event, env)
        if step.changed:
            state = step.state
        yield event, step


def fold(
    events: Iterable[Envelope[Any]], env: Environment, *, at_step: int | None = None
) -> Replay:
    """Fold `events` (one run's, in folding order) into its state.

    With `at_step`, stop as soon as memory would have assembled the context of that step: the
    state then is what the agent knew when it took step k.
    """
    replay = Replay()
    for event, step in folding(events, env):
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
