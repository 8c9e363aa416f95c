"""The chaos suite, smaller (`make chaos` plays the full set): 20 concurrent runs of seven
steps, each step a side effect, while the services are SIGKILLed in turn and restarted, on
private servers of the test's own. Every run gets its answer and every side effect ran exactly
once. (Each scenario is a file of its own: they run side by side.)
"""

from __future__ import annotations

import pytest
from accounting import assert_every_run_accounted, play
from loopline_testing.chaos import QUICK, WAIT_TARGET_S


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
