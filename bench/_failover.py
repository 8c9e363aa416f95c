"""Failover: SIGKILL one of two replicas of a service mid-run; seconds until its runs step on.

The approach of tests/e2e/test_failover_kill.py: concurrent runs, two replicas of the service
under test (one of every other), a kill -9 once every run is under way. The runs of the killed
replica are those on the partitions it owned (its service log names them at each assignment;
the harness waits until both replicas own some). For each of them, the time from the kill
until it steps again after the pause the kill caused, as the driver reads its records; the
worst is the failover time: the group must notice the death (the session timeout) and
rebalance. The other runs pause only for the rebalance.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

from loopline_bus import KafkaBus, partition_for
from loopline_events import CONTEXTS

from bench._live import RUN_TIMEOUT_S, BenchError, Driver
from bench._namespace import Home, Namespace, System
from bench._progress import say
from bench._stats import percentile
from bench._steps import StepLog, new_run_ids, submit

DECISIONS_BEFORE_KILL = 2
"""Decisions per run seen (on average) before the kill, so that every run is under way."""
ASSIGNMENT = re.compile(r"assignment (\{.*\})\s*$")
SPLIT_TIMEOUT_S = 60.0
PARTITIONS = CONTEXTS.partitions
"""Partitions of every loop topic; range assignment gives a member the same numbers of each."""


def assigned(log: Path, group: str) -> set[int] | None:
    """Partition numbers of the latest assignment a service's log reports for `group`."""
    latest = None
    for line in log.read_text(errors="replace").splitlines():
        found = ASSIGNMENT.search(line)
        if found:
            data = json.loads(found.group(1))
            if data.get("group") == group:
                latest = {int(p.rsplit(":", 1)[1]) for p in data["partitions"]}
    return latest


async def wait_split(system: System, service: str) -> dict[str, set[int]]:
    """Wait until the two replicas of `service` share its partitions; each one's numbers."""
    async with asyncio.timeout(SPLIT_TIMEOUT_S):
        while True:
            logs = {s.name: s.log for s in system.services.status() if s.name != service}
            owned = {
                name: assigned(log, service) or set()
                for name, log in logs.items()
                if name.startswith(f"{service}-")
            }
            numbers = [p for parts in owned.values() for p in parts]
            if len(owned) == 2 and all(owned.values()) and len(numbers) == PARTITIONS:
                return owned
            await asyncio.sleep(0.2)


async def failover(
    namespace: Namespace, home: Home, service: str, runs: int, iterations: int
) -> dict[str, Any]:
    """Kill one of two `service` replicas during `runs` runs; the worst wait that caused."""
    system = System(namespace, home, folder=f"failover-{service}")
    say(f"failover {service}: starting two replicas of it, one of each other service")
    system.up({service: 2})
    bus = KafkaBus(
        settings=namespace.endpoints.kafka, client_id="bench", signing_key=namespace.signing_key()
    )
    log = StepLog(namespace.endpoints.kafka)
    await bus.start()
    await log.start()
    try:
        return await _kill_during_runs(Driver(system, bus, log), service, runs, iterations)
    finally:
        await log.stop()
        await bus.stop()
        system.down()


async def _kill_during_runs(
    driver: Driver, service: str, runs: int, iterations: int
) -> dict[str, Any]:
    tag = f"failover {service}"
    try:
        owned = await wait_split(driver.system, service)
    except TimeoutError:
        raise BenchError(f"{tag}: the replicas never shared the partitions") from None
    victim = f"{service}-1"
    run_ids = _half_on(owned[victim], runs, f"failover-{service}")
    await submit(driver.bus, driver.log, run_ids, iterations)
    await driver.log.wait_for(runs * DECISIONS_BEFORE_KILL, RUN_TIMEOUT_S)
    killed_at = time.perf_counter()
    pid = driver.system.services.kill(victim)
    say(f"{tag}: killed {victim} (pid {pid}) with SIGKILL")
    await driver.finish(run_ids, iterations, tag)
    theirs = [r for r in run_ids if partition_for(r.encode(), PARTITIONS) in owned[victim]]
    waits = _waits_after(driver.log, theirs, killed_at)
    others = _waits_after(driver.log, [r for r in run_ids if r not in theirs], killed_at)
    return {
        "service": service,
        "runs": runs,
        "iterations": iterations,
        "killed": victim,
        "partitions_of_killed": sorted(owned[victim]),
        "its_runs_measured": len(waits),
        "worst_s": round(max(waits), 3) if waits else None,
        "p50_s": round(percentile(waits, 50), 3),
        "other_runs_worst_s": round(max(others), 3) if others else None,
        "all_completed": True,
    }


def _half_on(partitions: set[int], count: int, tag: str) -> list[str]:
    """`count` run ids, half of them on `partitions` (the replica to be killed)."""
    theirs: list[str] = []
    others: list[str] = []
    while len(theirs) < (count + 1) // 2 or len(others) < count // 2:
        (run_id,) = new_run_ids(1, tag)
        mine = partition_for(run_id.encode(), PARTITIONS) in partitions
        side = theirs if mine else others
        if len(side) < ((count + 1) // 2 if mine else count // 2):
            side.append(run_id)
    return theirs + others


def _waits_after(log: StepLog, run_ids: list[str], killed_at: float) -> list[float]:
    """For each run, seconds from the kill until it stepped again after its longest pause.

    A run does not stall at once: a step already in flight (a tool result, when the planner
    died) lands right after the kill; the run then waits for the dead replica's work. Its
    longest gap between records ending after the kill is that wait; where it ends, the run
    goes on.
    """
    waits = []
    for run_id in run_ids:
        trace = log.runs[run_id]
        times = sorted([s.received for s in trace.steps] + [trace.finished])
        after = [(b - a, b) for a, b in itertools.pairwise(times) if b > killed_at]
        if after:
            waits.append(max(after)[1] - killed_at)
    return waits
