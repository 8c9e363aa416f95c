"""The chaos suite, smaller: 20 concurrent runs of seven steps, each step a side effect,
while Redis is flushed, Kafka restarted and PostgreSQL stopped, in turn, on private servers of
the test's own. Every run ends completed or failed with a stated reason, none is lost, and every
side effect ran exactly once.
"""

from __future__ import annotations

import pytest
from accounting import assert_every_run_accounted, play
from loopline_testing.chaos import QUICK


@pytest.mark.timeout(600)
async def test_servers_flushed_restarted_and_stopped_in_turn_lose_no_run() -> None:
    scenario = QUICK[1]
    report = await play(scenario)
    assert_every_run_accounted(report, scenario)
