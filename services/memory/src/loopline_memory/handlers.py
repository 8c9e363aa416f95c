"""Memory's use case: fold an event of a run and publish what it causes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from loopline_bus import Outbound
from loopline_events import Envelope, decode_event, encode_event

from loopline_memory.adapters.store import OUTBOX_SIZE, RunStore, Sent, StoredRun
from loopline_memory.domain import Environment, apply

PRODUCER = "memory"

log = logging.getLogger("loopline.memory")


class MemoryHandler:
    """Loads the run, applies the event with the reducer, saves, returns the emissions."""

    def __init__(self, store: RunStore, env: Environment):
        self.store = store
        self.env = env

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        stored = await self.store.load(event.run_id)
        state = stored.state if stored else None
        cause = str(event.event_id)
        if stored is not None and state is not None and cause in state.applied:
            # A redelivery (we crashed after saving, before our outputs were acknowledged):
            # publish the same outputs again, with the same ids, so nothing is lost or doubled.
            return [
                Outbound(s.topic, decode_event(s.event)) for s in stored.outbox if s.cause == cause
            ]
        step = apply(state, event, self.env)
        if not step.changed or step.state is None:
            log.info("run %s: %s ignored: %s", event.run_id, event.type, step.note)
            return ()
        outputs = [
            Outbound(
                e.topic, event.follow(e.payload, producer=PRODUCER, seq=step.state.step, index=i)
            )
            for i, e in enumerate(step.emissions)
        ]
        sent = tuple(
            Sent(cause=cause, topic=o.topic, event=encode_event(o.event).decode()) for o in outputs
        )
        outbox = ((*stored.outbox, *sent) if stored else sent)[-OUTBOX_SIZE:]
        await self.store.save(StoredRun(state=step.state, outbox=outbox), event, outputs)
        return outputs
