"""Rebuilding a run's state from the log, as memory holds it: replay, and state at step k."""

from __future__ import annotations

from loopline_bus import Progress, read_history
from loopline_memory.adapters.environment import load_environment
from loopline_memory.domain.replay import (
    MEMORY_INPUTS,
    MEMORY_OUTPUTS,
    NoGoalError,
    Replay,
    fold,
    in_folding_order,
)
from loopline_runtime import KafkaSettings


async def replay_run(
    settings: KafkaSettings,
    run_id: str,
    *,
    at_step: int | None = None,
    progress: Progress | None = None,
) -> Replay:
    """Read `run_id`'s events from Kafka and fold them through memory's reducer.

    Raises LookupError when the log holds no event of the run, StepNotReachedError when it
    never reached `at_step`.
    """
    recorded = await read_history(
        settings, (*MEMORY_INPUTS, *MEMORY_OUTPUTS), run_id, progress=progress
    )
    ordered = in_folding_order((r.topic, r.event) for r in recorded)
    if not ordered:
        raise LookupError(f"the log holds no event of run {run_id}")
    try:
        return fold(ordered, load_environment(), at_step=at_step)
    except NoGoalError as exc:
        raise NoGoalError(f"run {run_id}: the log holds {exc}") from None
