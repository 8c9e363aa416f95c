"""Memory's public API over the log: a run's state rebuilt from its events (at its end, or as
of step k), and a deterministic re-run from its recorded inputs.

Both fold with the function memory folds with live (`domain.replay.folding` over the reducer),
in the order memory folded (its journal): the SDK, the CLI and the gateway come here, not to
memory's adapters or domain.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from loopline_bus import Progress, read_history
from loopline_events import (
    CONTEXTS,
    RESULTS,
    Envelope,
    GoalRejected,
    GoalSubmitted,
    MemoryOutput,
    RunForked,
)
from loopline_runtime import Endpoints, KafkaSettings, schema_name

from loopline_memory.adapters.environment import load_environment
from loopline_memory.adapters.store import RunStore
from loopline_memory.domain import RunState
from loopline_memory.domain.reducer import Environment
from loopline_memory.domain.replay import (
    MEMORY_INPUTS,
    MEMORY_OUTPUTS,
    NoGoalError,
    Replay,
    StepNotReachedError,
    fold,
    folding,
    in_folding_order,
    rejections,
)

RERUN_NAMESPACE = uuid.UUID("6f1d7c2e-5b0a-4c59-9e33-1b2f4a8d0c11")

__all__ = [
    "Divergence",
    "NoGoalError",
    "Replay",
    "Rerun",
    "StepNotReachedError",
    "held_states",
    "replay_run",
    "rerun_run",
]


async def replay_run(
    settings: KafkaSettings,
    run_id: str,
    *,
    at_step: int | None = None,
    progress: Progress | None = None,
    env: Environment | None = None,
) -> Replay:
    """Read `run_id`'s events from Kafka and fold them through memory's reducer.

    Raises LookupError when the log holds no event of the run (NoGoalError when it holds some
    but not its goal), StepNotReachedError when it never reached `at_step`.
    """
    recorded = await read_history(
        settings, (*MEMORY_INPUTS, *MEMORY_OUTPUTS), run_id, progress=progress
    )
    log = [(r.topic, r.event) for r in recorded]
    ordered = in_folding_order(log)
    refused = rejections(log)
    if not ordered and not refused:
        raise LookupError(f"the log holds no event of run {run_id}")
    try:
        return fold(ordered, env or load_environment(), at_step=at_step)
    except NoGoalError as exc:
        if refused:
            raise _never_started(run_id, refused) from None
        raise NoGoalError(f"run {run_id}: the log holds {exc}") from None


def _never_started(run_id: str, refused: Sequence[GoalRejected]) -> NoGoalError:
    """The error of a run whose every goal memory rejected: its latest answer says why."""
    why = refused[-1].message or refused[-1].reason.value
    return NoGoalError(f"run {run_id} never started: memory rejected it ({why})")


@dataclass(frozen=True)
class Divergence:
    """Where the re-run differs from the original."""

    step: int
    what: str
    original: str
    rerun: str


@dataclass
class Rerun:
    """The outcome of a deterministic re-run."""

    run_id: str
    rerun_id: str
    inputs: int = 0
    compared: int = 0
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return bool(self.divergences)


async def rerun_run(settings: KafkaSettings, run_id: str, env: Environment | None = None) -> Rerun:
    """Re-run `run_id` from its recorded inputs (goal, decisions, tool results, commands,
    re-keyed to a new run id) through the reducer as it is now, calling no model and no tool,
    and compare what it emits (contexts, the result) with what memory emitted then: any
    difference is a divergence (a changed reducer, prompt template or profile)."""
    recorded = await read_history(settings, (*MEMORY_INPUTS, *MEMORY_OUTPUTS), run_id)
    log = [(r.topic, r.event) for r in recorded]
    inputs = in_folding_order(log)
    refused = rejections(log)
    if refused and not any(isinstance(e.payload, GoalSubmitted | RunForked) for e in inputs):
        raise _never_started(run_id, refused)
    # A context memory re-published after a crash has the same id: count it once.
    outputs = list(
        {r.event.event_id: r.event for r in recorded if r.topic in MEMORY_OUTPUTS}.values()
    )
    if not inputs:
        raise LookupError(f"the log holds no event of run {run_id}")
    rerun_id = f"rerun-{uuid.uuid4().hex[:16]}"
    result = Rerun(run_id=run_id, rerun_id=rerun_id, inputs=len(inputs))
    state = None
    emitted: list[tuple[int, Any]] = []
    rekeyed = (rekey(event, rerun_id) for event in inputs)
    # Re-keyed, the events no longer name their causes' ids: memory checked those when it
    # folded them live, and a re-run folds what memory accepted.
    trusting = dataclasses.replace(env or load_environment(), trust_log=True)
    for _, step in folding(rekeyed, trusting):
        if step.changed:
            state = step.state
            seq = state.step if state else 0
            emitted += [
                (seq, e.payload) for e in step.emissions if e.topic in (CONTEXTS.name, RESULTS.name)
            ]
    if state is None:
        raise NoGoalError(f"run {run_id}: the log holds its events but no goal that starts it")
    _compare(result, [(e.seq, _as_rerun(e.payload, rerun_id)) for e in outputs], emitted)
    return result


def rekey(event: Envelope[Any], run_id: str) -> Envelope[Any]:
    """The same event for run `run_id`, with an id derived from the original's."""
    return event.model_copy(update={"run_id": run_id, "event_id": _rekeyed(run_id, event.event_id)})


def _rekeyed(run_id: str, event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(RERUN_NAMESPACE, f"{run_id}/{event_id}")


def _as_rerun(payload: Any, run_id: str) -> Any:
    """An original output as the re-run would write it: its journal names re-keyed inputs."""
    if not isinstance(payload, MemoryOutput):
        return payload
    return payload.model_copy(update={"folded": tuple(_rekeyed(run_id, i) for i in payload.folded)})


def _compare(result: Rerun, original: list[tuple[int, Any]], rerun: list[tuple[int, Any]]) -> None:
    for index in range(max(len(original), len(rerun))):
        before = original[index] if index < len(original) else None
        after = rerun[index] if index < len(rerun) else None
        result.compared += 1
        if before is not None and after is not None and before[0] == after[0]:
            if before[1] == after[1]:
                continue
            what = f"{type(before[1]).__name__} differs"
        elif before is None:
            what = "the re-run emitted more"
        elif after is None:
            what = "the re-run emitted less"
        else:
            what = "the steps differ"
        step = (before or after or (0, None))[0]
        result.divergences.append(
            Divergence(step=step, what=what, original=_text(before), rerun=_text(after))
        )


def _text(item: tuple[int, Any] | None) -> str:
    if item is None:
        return "(nothing)"
    seq, payload = item
    return f"step {seq} {type(payload).__name__}: {payload.model_dump_json()}"


async def held_states(endpoints: Endpoints, run_ids: Sequence[str]) -> dict[str, RunState]:
    """The state memory holds of each of `run_ids` it knows, as it loads it after a restart
    (PostgreSQL): what `replay_run` of the run must rebuild."""
    namespace = endpoints.kafka.topic_prefix
    pool = await asyncpg.create_pool(
        endpoints.postgres.dsn.get_secret_value(), min_size=1, max_size=2
    )
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    store = RunStore(pool, redis, schema_name("memory", namespace), namespace)
    held: dict[str, RunState] = {}
    try:
        for run_id in run_ids:
            stored = await store.load_durable(run_id)
            if stored is not None:
                held[run_id] = stored.state
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return {}  # memory never ran in this namespace
    finally:
        await redis.aclose()
        await pool.close()
    return held
