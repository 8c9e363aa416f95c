"""Memory's use case: fold an event of a run and publish what it causes."""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

from loopline_artifacts import ArtifactStore
from loopline_bus import Outbound
from loopline_events import (
    OBSERVATIONS,
    Envelope,
    ForbiddenError,
    GoalRejected,
    GoalSubmitted,
    ModelDecided,
    OrphanError,
    RunForked,
    decode_event,
    encode_event,
)

from loopline_memory.adapters.longterm import LongTermMemory, Recall
from loopline_memory.adapters.metrics import record_cost
from loopline_memory.adapters.store import (
    OUTBOX_SIZE,
    Pending,
    RunStore,
    Sent,
    StoredRun,
    Write,
)
from loopline_memory.domain import (
    Emission,
    Environment,
    RecallRequest,
    RunState,
    Step,
    StoreMemory,
    apply,
)
from loopline_memory.domain.budgets import decision_price
from loopline_memory.domain.served import recalled
from loopline_memory.domain.state import StoreArtifact

PRODUCER = "memory"

Heal = Callable[[str, UUID], Awaitable[StoredRun | None]]
"""Rebuilds a run's state from the log, up to (not including) an event."""


def _starts_a_run(event: Envelope[Any]) -> bool:
    return isinstance(event.payload, GoalSubmitted | RunForked)


log = logging.getLogger("loopline.memory")


def _follow(cause: Envelope[Any], emission: Emission, state: RunState, index: int) -> Envelope[Any]:
    """The event `cause` makes memory emit: of the run's tenant, whoever sent the cause (a
    command from recovery about a dead letter does not know the run's tenant); a rejection
    answers its goal's sender, in the goal's tenant."""
    out = cause.follow(emission.payload, producer=PRODUCER, seq=state.step, index=index)
    if emission.run_id is not None:  # another run's: a sub-task's goal, a parent's result
        out = out.model_copy(update={"run_id": emission.run_id, "seq": emission.seq or 0})
    if out.tenant == state.tenant or isinstance(emission.payload, GoalRejected):
        return out
    return out.model_copy(update={"tenant": state.tenant})


HOT_RUNS = 20_000
"""How many runs' states a write-behind handler keeps in its process."""


class MemoryHandler:
    """Loads the run, applies the event with the reducer, does the I/O the reducer asks for
    (recall, long-term memories, the usage ledger), saves, returns the emissions.

    With `write_behind`, a save waits for `flush()`, which the bus calls once per batch before
    publishing the batch's outputs: one transaction and one fsync for a whole batch, and the
    states of the runs this process owns stay in it, so their next events neither read nor
    decode them again. The bus calls `forget()` when partitions move (another process may
    change those runs now) and a failed flush forgets too: the batch is handled again from
    what is durable.
    """

    def __init__(
        self,
        store: RunStore,
        env: Environment,
        longterm: LongTermMemory | None = None,
        recall: Recall | None = None,
        heal: Heal | None = None,
        *,
        artifacts: ArtifactStore | None = None,
        write_behind: bool = False,
    ):
        self.store = store
        self.artifacts = artifacts
        self.env = env
        self.heal = heal
        self.longterm = longterm or LongTermMemory(store.pool, store.schema)
        self.recall: Recall = recall or self.longterm
        self.write_behind = write_behind
        self._hot: OrderedDict[str, StoredRun] = OrderedDict()
        self._pending: list[Pending] = []
        self._durable: dict[str, int] = {}
        """Messages of each held run's history that are stored: a save adds the rest."""

    async def flush(self) -> None:
        """Save every run changed since the last flush (one transaction)."""
        pending, self._pending = self._pending, []
        try:
            await self.store.save_many(pending)
        except BaseException:
            self.forget()
            raise
        self._stored(pending)

    def _stored(self, pending: Sequence[Pending]) -> None:
        for p in pending:
            state = p.stored.state
            if state.run_id in self._hot or not self.write_behind:
                self._durable[state.run_id] = len(state.messages)

    def forget(self) -> None:
        """Drop the states held in the process and the saves not flushed yet."""
        self._hot.clear()
        self._pending.clear()
        self._durable.clear()

    async def _load(self, run_id: str) -> StoredRun | None:
        hot = self._hot.get(run_id)
        if hot is not None:
            self._hot.move_to_end(run_id)
            return hot
        stored = await self.store.load(run_id)
        self._durable[run_id] = len(stored.state.messages) if stored else 0
        return stored

    async def _save(self, pending: Pending) -> None:
        if not self.write_behind:
            await self.store.save_many([pending])
            self._stored([pending])
            return
        run_id = pending.stored.state.run_id
        self._hot[run_id] = pending.stored
        self._hot.move_to_end(run_id)
        if len(self._hot) > HOT_RUNS:
            gone, _ = self._hot.popitem(last=False)
            self._durable.pop(gone, None)
        self._pending.append(pending)

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        stored = await self._load(event.run_id)
        if stored is None and self.heal is not None and not _starts_a_run(event):
            # No state for a run that exists: its projections were lost (Redis flushed, rows
            # wiped for a rebuild). Fold it from the log before going on.
            stored = await self.heal(event.run_id, event.event_id)
            self._durable[event.run_id] = len(stored.state.messages) if stored else 0
        state = stored.state if stored else None
        cause = str(event.event_id)
        if stored is not None and state is not None and cause in state.applied:
            # A redelivery (we crashed after saving, before our outputs were acknowledged):
            # publish the same outputs again, with the same ids, so nothing is lost or doubled.
            return [
                Outbound(s.topic, decode_event(s.event)) for s in stored.outbox if s.cause == cause
            ]
        step = apply(state, event, self.env)
        if step.orphan:
            raise OrphanError(f"{event.type} of run {event.run_id}: {step.note}")
        if step.forbidden:
            raise ForbiddenError(f"{event.type} of run {event.run_id}: {step.note}")
        if step.refusal is not None:  # answered; the run, if there is one, is not touched
            log.info("run %s: %s", event.run_id, step.note)
            refusal = event.follow(step.refusal.payload, producer=PRODUCER, seq=0)
            return [Outbound(step.refusal.topic, refusal)]
        if not step.changed or step.state is None:
            log.info("run %s: %s ignored: %s", event.run_id, event.type, step.note)
            return ()
        await self._store_artifacts(step)
        emissions = [*step.emissions, *await self._recall(step.state, step)]
        outputs = [
            Outbound(e.topic, _follow(event, e, step.state, i)) for i, e in enumerate(emissions)
        ]
        sent = tuple(
            Sent(cause=cause, topic=o.topic, event=encode_event(o.event).decode()) for o in outputs
        )
        outbox = ((*stored.outbox, *sent) if stored else sent)[-OUTBOX_SIZE:]
        writes = self._writes(step.state, step, event)
        saved = self._durable.get(event.run_id, 0)
        await self._save(
            Pending(StoredRun(state=step.state, outbox=outbox), event, outputs, writes, saved)
        )
        if isinstance(event.payload, ModelDecided):  # folded once: a duplicate returned above
            usage = event.payload.usage
            record_cost(
                event.payload.model, decision_price(step.state, event.payload.model).of(usage)
            )
        return outputs

    async def _store_artifacts(self, step: Step) -> None:
        """Store the texts the new messages reference, before anything names them."""
        texts = [r.text for r in step.requests if isinstance(r, StoreArtifact)]
        if texts and self.artifacts is None:
            raise RuntimeError("memory has no artifact store for a text too large to send")
        for text in texts:
            assert self.artifacts is not None
            await self.artifacts.put(text)

    async def _recall(self, state: RunState, step: Step) -> list[Emission]:
        """Answer the reducer's recalls: each becomes a `recall` result on agent.observations,
        which memory folds when it reads it back, so the log records what was recalled."""
        answers = []
        for request in step.requests:
            if isinstance(request, RecallRequest):
                found = await self.recall.recall(
                    state.tenant, state.agent, request.query, request.limit
                )
                answer = recalled(request.call_id, found)
                answers.append(Emission(topic=OBSERVATIONS.name, payload=answer))
        return answers

    def _writes(self, state: RunState, step: Step, event: Envelope[Any]) -> list[Write]:
        kept = [r for r in step.requests if isinstance(r, StoreMemory)]
        writes: list[Write] = []
        if kept:
            writes.append(
                functools.partial(self.longterm.keep, state=state, at=event.occurred_at, kept=kept)
            )
        return writes
