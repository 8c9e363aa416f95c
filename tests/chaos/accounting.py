"""Playing a chaos scenario on private servers, and what every scenario must show: each run
accounted for, no side effect twice, every fault striking runs under way and each wait bounded.
"""

from __future__ import annotations

from loopline_testing.chaos import (
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
