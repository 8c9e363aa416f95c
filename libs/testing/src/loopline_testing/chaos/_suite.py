"""The scenarios of `make chaos` and of the smaller run `make test` plays, and how to play them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from loopline_testing.chaos._faults import (
    FlushRedis,
    KillBroker,
    KillServices,
    RestartBroker,
    RestartKafka,
    StopPostgres,
)
from loopline_testing.chaos._infra import PrivateInfra
from loopline_testing.chaos._report import BROKER_TARGET_S, ScenarioReport
from loopline_testing.chaos._scenario import Say, Scenario, run_scenario

FULL: tuple[Scenario, ...] = (
    Scenario("kill memory", (KillServices(("memory",)),)),
    Scenario("kill planner", (KillServices(("planner",)),)),
    Scenario("kill tool-executor", (KillServices(("tool-executor",)),)),
    Scenario("kill recovery", (KillServices(("recovery",)),)),
    Scenario("kill two at once", (KillServices(("memory", "tool-executor")),)),
    Scenario("restart Kafka", (RestartKafka(),)),
    Scenario("flush Redis", (FlushRedis(),)),
    Scenario("stop PostgreSQL", (StopPostgres(10.0),)),
    Scenario("kill a broker", (KillBroker("broker"),), brokers=3, target_s=BROKER_TARGET_S),
    Scenario(
        "kill the active controller",
        (KillBroker("active controller"),),
        brokers=3,
        target_s=BROKER_TARGET_S,
    ),
    Scenario(
        "rolling restart",
        tuple(RestartBroker(step) for step in (1, 2, 3)),
        # Long runs, the brokers restarted one after another while they go: each restart takes
        # a JVM start (seconds to tens of seconds on a busy machine) and the runs must still be
        # under way for the last one.
        effects=80,
        strike_at=(0.02, 0.2, 0.4),
        brokers=3,
        target_s=BROKER_TARGET_S,
        check_replay=True,
    ),
)
"""`make chaos`: each fault alone in the middle of 100 concurrent runs of five steps; the last
three on a cluster of three brokers (replication 3, min.insync.replicas 2)."""

QUICK_EFFECT_S = 2.0
"""Each effect of the small runs takes 2 s: twenty runs of seven steps then last 12 s or more,
and a fault due at three quarters of them still finds runs under way."""

QUICK: tuple[Scenario, ...] = (
    Scenario(
        "services killed in turn",
        (
            KillServices(("memory", "tool-executor")),
            KillServices(("planner",)),
            KillServices(("recovery",)),
        ),
        runs=20,
        effects=6,
        effect_s=QUICK_EFFECT_S,
    ),
    Scenario(
        "servers restarted in turn",
        (FlushRedis(), RestartKafka(), StopPostgres(10.0)),
        runs=20,
        effects=6,
        effect_s=QUICK_EFFECT_S,
    ),
)
"""The smaller run of `make test`: 20 runs of seven steps, the faults in turn."""

QUICK_CLUSTER = Scenario(
    "active controller killed",
    (KillBroker("active controller", down_s=5.0),),
    runs=20,
    effects=6,
    effect_s=QUICK_EFFECT_S,
    brokers=3,
    target_s=BROKER_TARGET_S,
)
"""`make test`'s broker fault: the active controller of three brokers (the harder case: its
broker goes with it) SIGKILLed under 20 runs of seven steps."""


def scaled(scenarios: Sequence[Scenario], runs: int | None, effects: int | None) -> list[Scenario]:
    """`scenarios` with another number of runs or of effects per run."""
    changes: dict[str, int] = {}
    if runs is not None:
        changes["runs"] = runs
    if effects is not None:
        changes["effects"] = effects
    return [dataclasses.replace(s, **changes) for s in scenarios]  # type: ignore[arg-type]


async def run_suite(
    scenarios: Sequence[Scenario], say: Say, logs: Path | None = None
) -> list[ScenarioReport]:
    """Bring up private servers (one Kafka broker, then a cluster of three for the scenarios
    that need it), play every scenario on them in turn, take them down.

    With `logs`, each scenario's service logs are kept there.
    """
    reports: list[ScenarioReport] = []
    for brokers in sorted({s.brokers for s in scenarios}):
        chosen = [s for s in scenarios if s.brokers == brokers]
        say(f"bringing up a private Kafka of {brokers} broker(s), Redis and PostgreSQL")
        async with PrivateInfra(say=say, brokers=brokers) as infra:
            for scenario in chosen:
                report = await run_scenario(infra, scenario, say, logs)
                verdict = "ok" if report.ok else "NOT OK"
                say(f"{scenario.name}: {verdict} in {report.seconds:.0f} s")
                reports.append(report)
    order = {s.name: i for i, s in enumerate(scenarios)}
    return sorted(reports, key=lambda r: order[r.scenario])
