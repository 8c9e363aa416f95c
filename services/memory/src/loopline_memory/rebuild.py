"""Memory's projections rebuilt from the log: the log is the source of truth.

`rebuild` throws away the PostgreSQL rows and Redis copies of the runs the log holds (of one
tenant, or all) and folds their events again through the reducer, writing what memory would
have written: state, outbox, timeline and usage ledger, from the recorded inputs and memory's
recorded outputs. `heal` does the same for one run, on demand, when memory meets an event of a
run it has no state for (Redis flushed, rows lost): the run is folded from the log first.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiokafka.errors import KafkaError
from loopline_artifacts import ArtifactStore
from loopline_bus import Outbound, Progress, Recorded, read_history
from loopline_events import (
    CONTEXTS,
    OBSERVATIONS,
    RESULTS,
    Envelope,
    TransientError,
    encode_event,
)
from loopline_runtime import KafkaSettings

from loopline_memory.adapters.longterm import LongTermMemory
from loopline_memory.adapters.store import OUTBOX_SIZE, RunStore, Sent, StoredRun
from loopline_memory.domain import Environment
from loopline_memory.domain.replay import MEMORY_INPUTS, folding, in_folding_order

PRODUCER = "memory"
OUTPUT_TOPICS = (CONTEXTS.name, RESULTS.name, OBSERVATIONS.name)


@dataclass
class RebuildReport:
    runs: int
    events: int
    seconds: float


@dataclass
class _History:
    inputs: list[Envelope[Any]]
    outputs: dict[UUID, list[Outbound]]


def _by_run(recorded: Sequence[Recorded]) -> dict[str, _History]:
    logs: dict[str, list[tuple[str, Envelope[Any]]]] = defaultdict(list)
    runs: dict[str, _History] = defaultdict(lambda: _History([], defaultdict(list)))
    seen: set[UUID] = set()
    for r in recorded:
        event = r.event
        if event.event_id in seen:
            continue  # re-published after a crash: the same event
        seen.add(event.event_id)
        logs[event.run_id].append((r.topic, event))
        if r.topic in OUTPUT_TOPICS and event.producer == PRODUCER and event.causation_id:
            runs[event.run_id].outputs[event.causation_id].append(Outbound(r.topic, event))
    for run_id, log in logs.items():
        runs[run_id].inputs = in_folding_order(log)
    return runs


class Rebuilder:
    """Writes runs' projections from their recorded events, the way memory writes them."""

    def __init__(
        self,
        store: RunStore,
        env: Environment,
        longterm: LongTermMemory,
        artifacts: ArtifactStore | None = None,
    ):
        self.store, self.env, self.longterm = store, env, longterm
        self.artifacts = artifacts

    async def restore(self, history: _History, *, until: UUID | None = None) -> StoredRun | None:
        """Fold and save one run's inputs (those before `until`, when given)."""
        stored: StoredRun | None = None
        inputs = itertools.takewhile(lambda e: e.event_id != until, history.inputs)
        for event, step in folding(inputs, self.env):
            if not step.changed or step.state is None:
                continue
            outputs = history.outputs.get(event.event_id, [])
            sent = tuple(
                Sent(cause=str(event.event_id), topic=o.topic, event=encode_event(o.event).decode())
                for o in outputs
            )
            outbox = ((*stored.outbox, *sent) if stored else sent)[-OUTBOX_SIZE:]
            saved = len(stored.state.messages) if stored else 0
            stored = StoredRun(state=step.state, outbox=outbox)
            await self.store.save(stored, event, outputs, saved=saved)
        return stored

    async def heal(self, settings: KafkaSettings, run_id: str, before: UUID) -> StoredRun | None:
        """Rebuild one run from the log up to (not including) event `before`. A log that
        cannot be read now (a broker away, metadata not yet known) is a transient error: the
        event is tried again, never parked as poison."""
        try:
            recorded = await read_history(settings, (*MEMORY_INPUTS, *OUTPUT_TOPICS), run_id)
        except (KafkaError, LookupError) as exc:
            raise TransientError(f"the log of run {run_id} could not be read: {exc!r}") from exc
        history = _by_run(recorded).get(run_id)
        return await self.restore(history, until=before) if history else None

    async def rebuild(
        self,
        settings: KafkaSettings,
        *,
        tenant: str | None = None,
        progress: Progress | None = None,
    ) -> RebuildReport:
        """Wipe and rebuild the projections of every run in the log (of `tenant`, if given)."""
        started = time.monotonic()
        recorded = await read_history(settings, (*MEMORY_INPUTS, *OUTPUT_TOPICS), progress=progress)
        runs = {
            run_id: h
            for run_id, h in _by_run(recorded).items()
            if h.inputs and (tenant is None or h.inputs[0].tenant == tenant)
        }
        await self.store.forget(list(runs))
        events = 0
        for history in runs.values():
            await self.restore(history)
            events += len(history.inputs)
        return RebuildReport(runs=len(runs), events=events, seconds=time.monotonic() - started)
