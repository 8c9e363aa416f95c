"""The watchdog's use cases: follow every active run, and sweep for the ones that stalled.

Each recovery instance watches the runs of the partitions it is assigned: it keeps their
watches in memory, writes each batch's changes to Redis before committing the batch, and loads
a partition's watches from Redis when it is given the partition (after a restart or a
failover). A periodic sweep re-drives the pending step of a run that made no progress past its
step timeout, with backoff, and after the last re-drive asks memory to fail the run. A run
whose step holds calls for a person's approval is waiting, not stalled, until their time is
up; then the sweep denies them, or asks memory to fail the run, as their policy says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from loopline_events import FailureReason
from loopline_runtime import AgentProfile

from loopline_recovery.adapters import metrics
from loopline_recovery.domain import Expire, Fail, Kind, Policy, Redrive, Seen, Timing, Watch
from loopline_recovery.domain import watch as rules

log = logging.getLogger("loopline.recovery.watchdog")

Clock = Callable[[], float]

EARLY_RUNS = 1_000
"""Runs per partition whose records the watchdog keeps until their goal is read."""
EARLY_RECORDS = 8
"""Records kept of each such run: enough for its first step's parts."""


class WatchStore(Protocol):
    """Where watches are kept between owners of a partition (adapters.table.WatchTable)."""

    async def load(self, partition: int) -> dict[str, Watch]: ...

    async def save(self, changed: Mapping[int, Mapping[str, Watch | None]]) -> None: ...


class Actions(Protocol):
    """What the sweep does to the world (adapters.redrive.LogRedriver)."""

    async def redrive(self, where: rules.Location, tries: int) -> bool: ...

    async def fail(self, watch: Watch, fail: Fail) -> None: ...

    async def deny(self, watch: Watch, expire: Expire) -> None: ...


class Timings:
    """Each run's patience, from its agent profile (a default for unknown profiles)."""

    def __init__(self, profiles: Mapping[str, AgentProfile], default_step_timeout_s: float):
        self.profiles = profiles
        self.default = Timing(default_step_timeout_s)

    def __call__(self, agent: str | None) -> Timing:
        profile = self.profiles.get(agent) if agent is not None else None
        if profile is None:
            return self.default
        return Timing(profile.step_timeout_s, profile.deadline_s)


class Watchdog:
    """Active runs by partition; observes batches, sweeps on demand."""

    def __init__(
        self,
        table: WatchStore,
        actions: Actions,
        timings: Timings,
        policy: Policy | None = None,
        clock: Clock = time.time,
    ):
        self.table, self.actions, self.timings = table, actions, timings
        self.policy = policy or Policy()
        self.clock = clock
        self.runs: dict[int, dict[str, Watch]] = {}
        self.early: dict[int, OrderedDict[str, list[Seen]]] = {}
        """Partition → records read before their run's goal, by run, until the goal comes."""
        self._acting = asyncio.Lock()
        """Held while the sweep acts on a run: a partition is given up only between actions,
        so its next owner reads every re-drive this instance made."""

    @property
    def active(self) -> int:
        return sum(len(runs) for runs in self.runs.values())

    async def assigned(self, partitions: set[int]) -> None:
        """Load the watches of partitions just given to this instance. One that cannot be
        loaded now (Redis is slow or away) is loaded with the first batch that needs it."""
        for partition in partitions - self.runs.keys():
            try:
                self.runs[partition] = await self.table.load(partition)
            except Exception as exc:
                log.warning("watches of partition %d not loaded yet (%r)", partition, exc)
        metrics.ACTIVE_RUNS.set(self.active)
        log.info("watching %d active run(s) of partitions %s", self.active, sorted(self.runs))

    async def revoked(self, partitions: set[int]) -> None:
        """Forget partitions taken away (their watches are in Redis for the next owner)."""
        async with self._acting:
            for partition in partitions:
                self.runs.pop(partition, None)
                self.early.pop(partition, None)
        metrics.ACTIVE_RUNS.set(self.active)

    async def observe(self, batch: Sequence[tuple[int, Seen]]) -> None:
        """Fold a batch of records (of partitions this instance is assigned) into the
        watches; save what changed. Should a partition's watches not be loaded yet, they are
        now, and if they cannot be, the batch fails: it is read again, never skipped."""
        now = self.clock()
        for partition in {p for p, _ in batch} - self.runs.keys():
            self.runs[partition] = await self.table.load(partition)
        changed: dict[int, dict[str, Watch | None]] = {}
        for partition, seen in batch:
            runs = self.runs[partition]
            before = runs.get(seen.run_id)
            timing = self.timings(seen.agent)
            after = rules.observe(before, seen, timing, now, self.policy)
            if before is None:
                if after is None:
                    self._keep_early(partition, seen)
                    continue
                # A goal: what of its run was read before it is progress since.
                kept = self.early.get(partition)
                for early in kept.pop(seen.run_id, []) if kept is not None else []:
                    if after is not None:
                        after = rules.observe(after, early, timing, now, self.policy)
            if after is before:
                continue
            if after is None:
                runs.pop(seen.run_id, None)
                if before is None:
                    continue
            else:
                runs[seen.run_id] = after
            changed.setdefault(partition, {})[seen.run_id] = after
        if changed:
            await self.table.save(changed)
        metrics.ACTIVE_RUNS.set(self.active)

    def _keep_early(self, partition: int, seen: Seen) -> None:
        """Keep a record of a run whose goal was not read yet: the run topics are fetched
        apart, so a run's context can be read before its goal. A bounded few are kept, so
        records of runs that never start (forged ones) cannot grow it."""
        if seen.kind is Kind.GOAL or seen.redrive is not None:
            return
        early = self.early.setdefault(partition, OrderedDict())
        kept = early.setdefault(seen.run_id, [])
        if len(kept) < EARLY_RECORDS:
            kept.append(seen)
        early.move_to_end(seen.run_id)
        while len(early) > EARLY_RUNS:
            early.popitem(last=False)

    async def sweep(self, fresh: Mapping[int, float]) -> None:
        """Act on every overdue run of a partition read to the end since it became overdue."""
        now = self.clock()
        due: list[tuple[int, Watch, Redrive | Fail | Expire]] = []
        for partition, runs in self.runs.items():
            caught_up = fresh.get(partition, 0.0)
            for watch in runs.values():
                verdict = rules.judge(watch, min(now, caught_up), self.policy)
                if verdict is not None:
                    due.append((partition, watch, verdict))
        for partition, watch, verdict in due:
            async with self._acting:
                owned = self.runs.get(partition)
                if owned is None or owned.get(watch.run_id) is not watch:
                    continue  # the partition went to another instance, or the run moved on
                updated = await self._act(watch, verdict, now)
                if owned.get(watch.run_id) is watch and self.runs.get(partition) is owned:
                    owned[watch.run_id] = updated
                    # Saved at once: should this instance stop now, the next owner goes on
                    # from here (and the re-driven copy in the log tells it too).
                    await self.table.save({partition: {watch.run_id: updated}})

    async def _act(self, watch: Watch, verdict: Redrive | Fail | Expire, now: float) -> Watch:
        if isinstance(verdict, Expire):
            await self._expire(watch, verdict)
            return rules.after(watch, verdict, now, self.policy)
        if isinstance(verdict, Redrive):
            if await self.actions.redrive(verdict.location, verdict.tries):
                metrics.REDRIVEN.inc()
                log.warning(
                    "run %s stalled at step %d (waiting for %s): re-drove %s, try %d",
                    watch.run_id,
                    watch.seq,
                    watch.waiting_for,
                    verdict.location.topic,
                    verdict.tries,
                )
                return rules.after(watch, verdict, now, self.policy)
            log.error("run %s: its pending record is gone from the log", watch.run_id)
            verdict = Fail(
                FailureReason.STALLED,
                f"stalled at step {watch.seq}: the record to re-drive is gone from the log",
                at_step=watch.seq,
                first=True,
            )
        await self.actions.fail(watch, verdict)
        if verdict.first:
            metrics.FAILED.inc()
            log.warning("run %s: asked memory to fail it: %s", watch.run_id, verdict.message)
        return rules.after(watch, verdict, now, self.policy)

    async def _expire(self, watch: Watch, expire: Expire) -> None:
        """Carry out the timeout of held calls: deny them, or ask memory to fail the run."""
        if expire.on_timeout == "fail":
            await self.actions.fail(watch, expire.fail)
        else:
            await self.actions.deny(watch, expire)
        if expire.first:
            log.warning(
                "run %s: no one decided on held call(s) %s of step %d in time: %s",
                watch.run_id,
                ", ".join(expire.call_ids),
                watch.seq,
                "denied them" if expire.on_timeout == "deny" else "asked memory to fail it",
            )


async def sweep_forever(
    watchdog: Watchdog, fresh: Mapping[int, float], every_s: float, stopping: asyncio.Event
) -> None:
    """Sweep every `every_s` seconds until `stopping` is set; a failed sweep is logged, not
    fatal. A sweep under way when asked to stop is finished, not torn in the middle."""
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stopping.wait()
        if stopping.is_set():
            return
        try:
            await watchdog.sweep(fresh)
        except Exception:
            log.exception("watchdog sweep failed; the next one tries again")
