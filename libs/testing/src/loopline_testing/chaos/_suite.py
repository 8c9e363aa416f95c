"""The scenarios of `make chaos` and of the smaller run `make test` plays, and how to play them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from loopline_testing.chaos._faults import FlushRedis, KillServices, RestartKafka, StopPostgres
from loopline_testing.chaos._infra import PrivateInfra
from loopline_testing.chaos._report import ScenarioReport
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
)
"""`make chaos`: each fault alone in the middle of 100 concurrent runs of five steps."""

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
    ),
    Scenario(
        "servers restarted in turn",
        (FlushRedis(), RestartKafka(), StopPostgres(10.0)),
        runs=20,
        effects=6,
    ),
)
"""The smaller run of `make test`: 20 runs of seven steps, the faults in turn."""


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
    """Bring up private servers, play every scenario on them in turn, take them down.

    With `logs`, each scenario's service logs are kept there.
    """
    say("bringing up a private Kafka, Redis and PostgreSQL")
    async with PrivateInfra(say=say) as infra:
        reports = []
        for scenario in scenarios:
            report = await run_scenario(infra, scenario, say, logs)
            say(f"{scenario.name}: {'ok' if report.ok else 'NOT OK'} in {report.seconds:.0f} s")
            reports.append(report)
        return reports
