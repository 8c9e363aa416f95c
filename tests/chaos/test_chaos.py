"""The chaos suite, smaller: 20 concurrent runs of seven steps, each step a side effect, while
services are SIGKILLed and restarted, Redis, Kafka and PostgreSQL are flushed, restarted and
stopped, and the active controller of a cluster of three brokers is SIGKILLed, on private
servers of the suite's own. Every run ends completed or failed with a stated reason, none is
lost, and every side effect ran exactly once.

`make chaos` plays the full set (100 runs, each fault alone) and prints the table.
"""

from __future__ import annotations

import pytest
from loopline_testing.chaos import (
    BROKER_TARGET_S,
    QUICK,
    QUICK_CLUSTER,
    WAIT_TARGET_S,
    PrivateInfra,
    Scenario,
    ScenarioReport,
    render_table,
    run_scenario,
)

WAIT_BOUND_S = 30.0
"""What the suite insists on for the wait after a fault; the target (printed with the table)
is under 10 s. Generous because the CI machine has two cores for Kafka and every process."""


async def play(scenario: Scenario) -> ScenarioReport:
    async with PrivateInfra(say=print, brokers=scenario.brokers) as infra:
        report = await run_scenario(infra, scenario, print)
    print(render_table([report]))
    return report


def assert_every_run_accounted(report: ScenarioReport, scenario: Scenario) -> None:
    notes = "\n".join(report.notes)
    assert not report.lost, f"lost runs:\n{notes}"
    assert report.completed + report.failed_total == scenario.runs, notes
    assert report.failed_without_reason == 0, notes
    assert report.duplicate_effects == 0, "a side effect ran more than once"
    assert report.unexecuted_effects == 0, "a call reported done never ran"
    for fault in report.faults:
        assert fault.in_flight > 0, f"{fault.fault} struck no run in flight"
        assert fault.worst_wait_s is not None, fault
        assert fault.worst_wait_s < WAIT_BOUND_S, fault
        assert fault.longest_pause_s is not None, fault
        assert fault.longest_pause_s < WAIT_BOUND_S, fault


@pytest.mark.timeout(420)
async def test_services_killed_in_turn_lose_no_run_and_repeat_no_side_effect() -> None:
    scenario = QUICK[0]
    report = await play(scenario)
    assert_every_run_accounted(report, scenario)
    # A crash costs time, never work: every run gets its answer, every effect ran once.
    assert report.completed_as_asked == scenario.runs, "\n".join(report.notes)
    assert report.effects_executed == scenario.runs * scenario.effects
    worst = max(f.worst_wait_s or 0.0 for f in report.faults)
    print(f"worst wait after a kill: {worst:.1f} s (target under {WAIT_TARGET_S:g} s)")


@pytest.mark.timeout(600)
async def test_servers_flushed_restarted_and_stopped_in_turn_lose_no_run() -> None:
    scenario = QUICK[1]
    report = await play(scenario)
    assert_every_run_accounted(report, scenario)


@pytest.mark.timeout(420)
async def test_the_active_controller_of_three_brokers_killed_loses_no_run() -> None:
    scenario = QUICK_CLUSTER
    report = await play(scenario)
    assert_every_run_accounted(report, scenario)
    # Three copies, two in sync: the broker's loss costs a pause, never a write.
    assert report.completed_as_asked == scenario.runs, "\n".join(report.notes)
    assert report.effects_executed == scenario.runs * scenario.effects
    (fault,) = report.faults
    print(f"longest pause: {fault.longest_pause_s} s (target under {BROKER_TARGET_S:g} s)")
