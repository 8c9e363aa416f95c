"""Forking a run: a new run with the first steps of another, copied, going on live."""

from __future__ import annotations

import uuid

from loopline_bus import KafkaBus, Outbound, start_trace
from loopline_events import CONTROL, GOALS, Envelope, ForkRecorded, RunForked
from loopline_memory.history import StepNotReachedError, replay_run


async def fork_run(
    bus: KafkaBus,
    run_id: str,
    *,
    from_step: int,
    agent: str | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
    new_run_id: str | None = None,
    producer: str = "sdk",
) -> Envelope[RunForked]:
    """Publish a fork of `run_id` after step `from_step`; the fork's RunForked event.

    Steps 1..from_step, their decisions and tool results, are copied from the log: neither the
    model nor any tool is called for them. Both runs record the lineage.
    """
    try:
        replayed = await replay_run(bus.settings, run_id, at_step=from_step + 1)
    except StepNotReachedError:
        raise StepNotReachedError(
            f"run {run_id} has no step after {from_step}: fork from an earlier step"
        ) from None
    parent = replayed.state
    assert parent is not None
    fork = RunForked(
        parent_run_id=run_id,
        from_step=from_step,
        goal=parent.goal,
        agent=agent or parent.agent,
        model=model,
        system_prompt=system_prompt,
        messages=parent.messages,
        usage=parent.usage,
    )
    child = new_run_id or str(uuid.uuid4())
    started = Envelope.of(
        fork,
        run_id=child,
        tenant=parent.tenant,
        producer=producer,
        trace=start_trace("fork run"),
    )
    lineage = Envelope.of(
        ForkRecorded(child_run_id=child, from_step=from_step),
        run_id=run_id,
        tenant=parent.tenant,
        producer=producer,
    )
    await bus.publish_many([Outbound(CONTROL.name, lineage), Outbound(GOALS.name, started)])
    return started
