"""The tool-executor waits out a PostgreSQL outage in place, and goes on soon after it ends."""

from __future__ import annotations

from loopline_tool_executor.main import RIDE_OUT

OUTAGE_S = 25.0
"""An outage the executor rides out without dead-lettering the decision it holds."""
BACK_WITHIN_S = 2.0
"""Once the ledger is back, the longest a held decision waits for its next try."""


def test_a_held_decision_is_tried_for_half_a_minute_never_more_than_2_s_apart() -> None:
    waits = [RIDE_OUT.backoff.ceiling(a) for a in range(1, RIDE_OUT.max_attempts)]
    assert sum(waits) >= OUTAGE_S
    assert max(waits) <= BACK_WITHIN_S
