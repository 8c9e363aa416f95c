"""What the chaos suite sees of the runs: every event of the run topics, as it is read."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from loopline_bus import EventStream
from loopline_events import (
    Envelope,
    ModelDecided,
    RunCancelled,
    RunCompleted,
    RunFailed,
    ToolCallSucceeded,
)

RESULT_TYPES = (RunCompleted, RunFailed, RunCancelled)


@dataclass(frozen=True)
class Waits:
    """How long the runs in flight at a moment waited for their next step after it."""

    in_flight: int
    """Runs started before the moment and not ended at it."""
    seconds: tuple[float, ...]
    """Each such run's wait, of those that took a next step."""
    pauses: tuple[float, ...] = ()
    """Each such run's longest pause between two of its events after the moment (until the
    next fault): what the fault cost it, even where its next event came at once (a context
    published promptly, whose decision waited for the planner that was down)."""

    @property
    def longest_pause(self) -> float | None:
        return max(self.pauses) if self.pauses else None

    @property
    def worst(self) -> float | None:
        return max(self.seconds) if self.seconds else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


class Timeline:
    """Every event of the namespace's runs, once each (a redelivered output is the same event).

    Times are the events' own `occurred_at` (when their producer made them; one machine, one
    clock), not when the suite read them.
    """

    def __init__(self) -> None:
        self.by_run: dict[str, list[Envelope[Any]]] = defaultdict(list)
        self.results: dict[str, Envelope[Any]] = {}
        self.decisions = 0
        self._seen: set[UUID] = set()
        self._changed = asyncio.Condition()

    async def follow(self, stream: EventStream) -> None:
        """Read `stream` until cancelled."""
        async for event in stream.events():
            if event.event_id in self._seen:
                continue
            self._seen.add(event.event_id)
            self.by_run[event.run_id].append(event)
            if isinstance(event.payload, ModelDecided):
                self.decisions += 1
            if isinstance(event.payload, RESULT_TYPES):
                self.results.setdefault(event.run_id, event)
            async with self._changed:
                self._changed.notify_all()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` holds, at most `timeout` seconds; whether it does."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(done)
        return done()

    def ended(self, run_ids: Collection[str]) -> bool:
        """Whether every run of `run_ids` has its result."""
        return all(r in self.results for r in run_ids)

    def effect_calls(self) -> set[tuple[str, str]]:
        """(run, call) of every `record_effect` call reported done."""
        return {
            (run_id, e.payload.call_id)
            for run_id, events in self.by_run.items()
            for e in events
            if isinstance(e.payload, ToolCallSucceeded) and e.payload.tool == "record_effect"
        }

    def in_flight_at(self, moment: datetime) -> int:
        """Runs started before `moment` and not ended at it."""
        return len(self._in_flight(moment, moment))

    def _in_flight(self, started: datetime, until: datetime) -> list[str]:
        return [
            run_id
            for run_id, events in self.by_run.items()
            if any(e.occurred_at <= started for e in events)
            and not any(
                isinstance(e.payload, RESULT_TYPES) and e.occurred_at <= until for e in events
            )
        ]

    def waits_after(
        self, started: datetime, until: datetime, window_end: datetime | None = None
    ) -> Waits:
        """For the runs in flight when a fault began (`started`): how long after the fault
        ended (`until`; the same moment for a kill) each took its next step, and its longest
        pause from then to `window_end` (the next fault; None: its end)."""
        in_flight = self._in_flight(started, until)
        seconds, pauses = [], []
        for run_id in in_flight:
            later = sorted(
                e.occurred_at
                for e in self.by_run[run_id]
                if e.occurred_at > until and (window_end is None or e.occurred_at <= window_end)
            )
            if later:
                seconds.append((later[0] - until).total_seconds())
                moments = [until, *later]
                pauses.append(max((b - a).total_seconds() for a, b in itertools.pairwise(moments)))
        return Waits(len(in_flight), tuple(seconds), tuple(pauses))
