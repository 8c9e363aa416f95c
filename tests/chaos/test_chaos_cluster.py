"""The chaos suite, smaller: the active controller of a private cluster of three brokers
SIGKILLed under 20 concurrent runs of seven steps, each step a side effect. Three copies, two in
sync: no run is lost and every side effect ran exactly once.
"""

from __future__ import annotations

import pytest
from accounting import assert_every_run_accounted, play
from loopline_testing.chaos import BROKER_TARGET_S, QUICK_CLUSTER


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
