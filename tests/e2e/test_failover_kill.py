"""Fast failover: SIGKILL one of two replicas of a service in the middle of concurrent runs;
its partitions move to the live replica in seconds and every run still completes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from loopline_bus import RUN_TOPICS, EventStream
from loopline_events import (
    GOALS,
    Envelope,
    GoalSubmitted,
    ModelDecided,
    RunCompleted,
    utcnow,
)
from loopline_testing import System

from loopline.sdk import Loopline

RUNS = 16
COUNT_TO = 8
"""Each run counts to 8 with the calculator: nine model steps, long enough to be cut."""
KILL_AFTER_DECISIONS = 24
"""Decisions seen (of all runs) before the kill: every run is under way by then."""
FAILOVER_BOUND_S = 30.0
"""What the test insists on; the target (and the typical figure, printed) is under 10 s.
Generous because the CI machine has two cores shared by Kafka and eight service processes."""


class Timeline:
    """Every event of the namespace's runs, as read."""

    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []
        self.decisions = asyncio.Event()
        self.finished: dict[str, Envelope[Any]] = {}

    async def follow(self, stream: EventStream, expected: set[str]) -> None:
        decided = 0
        async for event in stream.events():
            self.events.append(event)
            if isinstance(event.payload, ModelDecided):
                decided += 1
                if decided >= KILL_AFTER_DECISIONS:
                    self.decisions.set()
            if event.type.startswith("Run"):
                self.finished.setdefault(event.run_id, event)
                if expected <= self.finished.keys():
                    return

    def worst_gap_after(self, killed_at: datetime) -> float:
        """Longest wait, among runs unfinished at the kill, from the kill to their next event.

        Times are the events' own `occurred_at` (when their producer made them; one machine,
        one clock), not when the test read them.
        """
        before = [e for e in self.events if e.occurred_at <= killed_at]
        unfinished = {e.run_id for e in before} - {
            e.run_id for e in before if e.type.startswith("Run")
        }
        gaps = [
            min(e.occurred_at for e in self.events if e.run_id == r and e.occurred_at > killed_at)
            - killed_at
            for r in unfinished
        ]
        return max(gaps).total_seconds()


@pytest.mark.parametrize("service", ["planner", "tool-executor", "memory"])
async def test_killing_one_of_two_replicas_loses_no_run(
    start_system: Callable[..., System], service: str
) -> None:
    system = start_system(replicas=2)
    run_ids = {f"count-{i}-{uuid.uuid4().hex[:6]}" for i in range(RUNS)}
    timeline = Timeline()
    stream = EventStream(system.kafka, topics=RUN_TOPICS)
    await stream.start(from_beginning=True)
    follower = asyncio.create_task(timeline.follow(stream, run_ids))
    try:
        async with Loopline(system.kafka, producer="e2e") as client:
            for run_id in sorted(run_ids):
                goal = GoalSubmitted(goal=f"Count to {COUNT_TO}", agent="calculator")
                await client._bus.publish(
                    GOALS.name, Envelope.of(goal, run_id=run_id, producer="e2e")
                )
        await asyncio.wait_for(timeline.decisions.wait(), 120)
        killed_at = utcnow()
        system.services.kill(f"{service}-1")
        await asyncio.wait_for(asyncio.shield(follower), 180)
    finally:
        follower.cancel()
        await stream.stop()
    for run_id in run_ids:
        outcome = timeline.finished[run_id].payload
        assert isinstance(outcome, RunCompleted), (run_id, outcome)
        assert f"I counted to {COUNT_TO}" in outcome.answer
    gap = timeline.worst_gap_after(killed_at)
    print(f"\n{service}: worst wait from the kill to a run's next step: {gap:.1f} s")
    assert gap < FAILOVER_BOUND_S
