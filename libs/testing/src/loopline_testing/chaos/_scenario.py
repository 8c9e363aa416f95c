"""A chaos scenario: many concurrent runs, faults injected in the middle, every run accounted.

Each scenario runs in a namespace of its own (topics, schemas, keys) on the private servers,
with the four services started for it: runs that write side effects through `record_effect`,
step after step, while the faults strike at evenly spaced points of their progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopline_bus import EventStream, KafkaBus, Outbound
from loopline_events import (
    GOALS,
    Envelope,
    GoalSubmitted,
    RunCancelled,
    RunCompleted,
    RunFailed,
    utcnow,
)

from loopline_testing._system import System, launch_system, stop_system
from loopline_testing.chaos._faults import Fault, Injected, Target
from loopline_testing.chaos._infra import PrivateInfra
from loopline_testing.chaos._report import (
    WAIT_TARGET_S,
    FaultReport,
    ScenarioReport,
    count_reasons,
)
from loopline_testing.chaos._timeline import Timeline
from loopline_testing.effects import PACE_VARIABLE, EffectCounts, read_effect_counts
from loopline_testing.plugin import delete_topics, unique_prefix

Say = Callable[[str], None]

AGENT = "effects"
"""The test profile whose runs record side effects (TEST_AGENTS)."""


@dataclass(frozen=True)
class Scenario:
    """Runs to start and faults to inject while they go."""

    name: str
    faults: tuple[Fault, ...]
    runs: int = 100
    effects: int = 4
    """Side effects each run records, one per step: a run takes `effects + 1` steps."""
    settle_s: float = 240.0
    """How long the runs may take to end after the last fault before those left are lost."""
    progress_wait_s: float = 120.0
    """How long to wait for the runs to reach the point of the next fault (then it strikes
    anyway)."""
    brokers: int = 1
    """Kafka brokers it runs on: one, or a cluster of three."""
    target_s: float = WAIT_TARGET_S
    """What the waits after each fault should stay under."""
    check_replay: bool = False
    """Whether, once every run has ended, `loopline replay --check` must find each run's
    replayed state equal to memory's."""
    strike_at: tuple[float, ...] = ()
    """The share of the runs' decisions made when each fault strikes; none given: evenly
    spaced (one fault: half-way)."""
    effect_s: float = 0.0
    """How long each side effect takes. Small runs on an idle machine can end within a second
    of their half-way mark, before the timeline (which reads the topics, a little behind) says
    a fault is due: paced effects keep them under way when it strikes."""

    def share_at(self, fault: int) -> float:
        """The share of the decisions after which fault number `fault` strikes."""
        if self.strike_at:
            return self.strike_at[fault]
        return (fault + 1) / (len(self.faults) + 1)

    def goal(self) -> str:
        return f"Record {self.effects} side effects"

    def expected_answer(self) -> str:
        return f"I recorded {self.effects} side effects."


async def run_scenario(
    infra: PrivateInfra, scenario: Scenario, say: Say, logs: Path | None = None
) -> ScenarioReport:
    """Play `scenario` on the private servers in a fresh namespace; the accounting of it.

    With `logs`, the services' logs are kept in a folder of it named after the scenario.
    """
    with infra.granted(unique_prefix()) as namespace:
        return await _play(infra, scenario, namespace, say, logs)


async def _play(
    infra: PrivateInfra, scenario: Scenario, namespace: str, say: Say, logs: Path | None
) -> ScenarioReport:
    home = Path(tempfile.mkdtemp(prefix="system-", dir=infra.home))
    say(f"{scenario.name}: starting the services in {namespace}")
    system = await asyncio.to_thread(
        launch_system,
        infra.endpoints,
        namespace,
        home,
        env_extra={PACE_VARIABLE: str(scenario.effect_s)},
        store=infra.store,
        partitions=None,  # the topics as declared: the harness measures what users run
    )
    stream = EventStream(system.kafka)
    timeline = Timeline()
    follower: asyncio.Task[None] | None = None
    try:
        await stream.start(from_beginning=True)
        follower = asyncio.create_task(timeline.follow(stream))
        begun = time.monotonic()
        run_ids = await _submit(system, scenario)
        say(f"{scenario.name}: {len(run_ids)} runs submitted")
        injected = await _strike(Target(system, infra, say), scenario, timeline, say)
        await timeline.wait_until(lambda: timeline.ended(run_ids), scenario.settle_s)
        seconds = time.monotonic() - begun
        counts = await read_effect_counts(
            infra.endpoints.postgres.dsn.get_secret_value(), namespace
        )
        report = account(scenario, run_ids, timeline, injected, counts)
        report.seconds = round(seconds, 1)
        report.brokers = scenario.brokers
        if scenario.check_replay:
            ended = [r for r in run_ids if r in timeline.results]
            say(f"{scenario.name}: loopline replay --check of {len(ended)} runs")
            report.replayed = len(ended)
            report.replay_differs = await check_replays(system, ended)
            report.notes += [f"{r} replayed: {how}" for r, how in report.replay_differs.items()]
        return report
    finally:
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await stream.stop()
        await asyncio.to_thread(stop_system, system)
        if logs is not None:
            kept = logs / re.sub(r"[^a-z0-9]+", "-", scenario.name.lower()).strip("-")
            shutil.copytree(system.services.dir, kept, dirs_exist_ok=True)
        with contextlib.suppress(Exception):  # a dead broker must not hide the real error
            await delete_topics(system.kafka)
        shutil.rmtree(home, ignore_errors=True)


REPLAY_TRIES = 5
REPLAY_PAUSE_S = 2.0


async def check_replays(system: System, run_ids: Sequence[str]) -> dict[str, str]:
    """Runs whose state `loopline replay --check` (a user's command) does not find equal to
    memory's, and how they differ. One that differs is asked again a few times: memory may
    not yet have folded an event the replay read (a redelivered step landing after the end)."""
    differs: dict[str, str] = {}
    pending = list(run_ids)
    for attempt in range(REPLAY_TRIES):
        if attempt:
            await asyncio.sleep(REPLAY_PAUSE_S)
        done = await asyncio.to_thread(
            system.cli, "replay", "--check", "--json", *pending, timeout=600
        )
        verdicts = {}
        for line in done.stdout.splitlines():
            if line.startswith("{"):
                answer = json.loads(line)
                verdicts[answer["run_id"]] = answer["memory"]
        if not verdicts:
            return dict.fromkeys(pending, f"loopline replay failed: {done.stderr.strip()[-500:]}")
        differs = {r: verdicts.get(r, "not replayed") for r in pending if verdicts.get(r) != "same"}
        pending = list(differs)
        if not pending:
            break
    return differs


async def _submit(system: System, scenario: Scenario) -> list[str]:
    """Publish every goal at once; their run ids."""
    run_ids = [f"chaos-{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(scenario.runs)]
    bus = KafkaBus(settings=system.kafka, client_id="chaos", signing_key=system.signing_key())
    await bus.start()
    try:
        goal = GoalSubmitted(goal=scenario.goal(), agent=AGENT)
        await bus.publish_many(
            [Outbound(GOALS.name, Envelope.of(goal, run_id=r, producer="chaos")) for r in run_ids]
        )
    finally:
        await bus.stop()
    return run_ids


async def _strike(
    target: Target, scenario: Scenario, timeline: Timeline, say: Say
) -> list[tuple[Fault, Injected]]:
    """Inject each fault once the runs have made their share of progress, and have moved on
    from the fault before (so a wait is the fault's own, not two faults' together)."""
    steps = scenario.runs * (scenario.effects + 1)
    injected = []
    recovered = 0
    for i, fault in enumerate(scenario.faults):
        # Never past the last decision: a fault that outlasted the runs strikes at once.
        due = min(max(int(steps * scenario.share_at(i)), recovered), steps)
        reached = functools.partial(_decided, timeline, due)
        if not await timeline.wait_until(reached, scenario.progress_wait_s):
            say(f"{scenario.name}: only {timeline.decisions} of {due} decisions; striking anyway")
        say(f"{scenario.name}: {fault.name} after {timeline.decisions} decisions")
        done = await fault.inject(target)
        injected.append((fault, dataclasses.replace(done, ended=utcnow())))
        say(
            f"{scenario.name}: {fault.name} over after {timeline.decisions} decisions, "
            f"{len(timeline.results)} runs ended"
        )
        recovered = timeline.decisions + max(1, scenario.runs // 2)
    return injected


def _decided(timeline: Timeline, decisions: int) -> bool:
    return timeline.decisions >= decisions


def account(
    scenario: Scenario,
    run_ids: Sequence[str],
    timeline: Timeline,
    injected: Sequence[tuple[Fault, Injected]],
    counts: EffectCounts,
) -> ScenarioReport:
    """Every run's fate, the side effects counted, and the waits after each fault."""
    report = ScenarioReport(scenario=scenario.name, started=len(run_ids))
    reasons = []
    for run_id in run_ids:
        result = timeline.results.get(run_id)
        payload: Any = result.payload if result else None
        if isinstance(payload, RunCompleted):
            report.completed += 1
            if payload.answer == scenario.expected_answer():
                report.completed_as_asked += 1
            else:
                report.notes.append(f"{run_id} completed: {payload.answer[:300]}")
        elif isinstance(payload, RunFailed):
            reasons.append(payload.reason.value)
            report.failed_without_reason += not payload.message.strip()
            report.notes.append(f"{run_id} failed ({payload.reason.value}): {payload.message}")
        elif isinstance(payload, RunCancelled):
            report.cancelled += 1
        else:
            report.lost.append(run_id)
            events = timeline.by_run.get(run_id, [])
            last = f"{events[-1].type} seq {events[-1].seq}" if events else "no event at all"
            report.notes.append(f"{run_id} lost; its last event: {last}")
    report.failed = count_reasons(reasons)
    report.effects_executed = len(counts.calls)
    report.duplicate_effects = len(counts.duplicates)
    report.unexecuted_effects = len(timeline.effect_calls() - counts.calls.keys())
    ends = [done.started for _, done in injected[1:]] + [None]
    for (fault, done), window_end in zip(injected, ends, strict=True):
        waits = timeline.waits_after(done.started, done.until, window_end)
        report.faults.append(
            FaultReport(
                fault=fault.name,
                outage_s=round(done.outage_s, 2),
                in_flight=waits.in_flight,
                worst_wait_s=_round(waits.worst),
                median_wait_s=_round(waits.median),
                longest_pause_s=_round(waits.longest_pause),
                target_s=scenario.target_s,
                in_flight_at_end=(
                    timeline.in_flight_at(done.ended) if done.ended is not None else None
                ),
            )
        )
    return report


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
