"""The ledger's rules, without a database: what happens to a call met again."""

from __future__ import annotations

import pytest
from loopline_events import ToolCallFailed, ToolCallSucceeded, ToolError, ToolErrorKind
from loopline_tool_executor.domain import (
    Action,
    Claim,
    Prior,
    next_action,
    outcome_of,
    outcome_record,
    unknown_outcome,
)


@pytest.mark.parametrize(
    ("prior", "can_reconcile", "action"),
    [
        (Prior.NEW, False, Action.RUN),
        (Prior.NEW, True, Action.RUN),
        (Prior.FINISHED, True, Action.REPLAY),
        (Prior.FINISHED, False, Action.REPLAY),
        (Prior.STARTED, True, Action.RECONCILE),
        (Prior.STARTED, False, Action.REPORT_UNKNOWN),
    ],
)
def test_an_unfinished_call_is_never_run_blind(
    prior: Prior, can_reconcile: bool, action: Action
) -> None:
    assert next_action(Claim(prior), can_reconcile=can_reconcile) is action


def test_recorded_outcomes_come_back_equal() -> None:
    succeeded = ToolCallSucceeded(call_id="c", tool="pay", output="paid", attempts=2)
    failed = ToolCallFailed(
        call_id="c", tool="pay", error=ToolError(kind=ToolErrorKind.EXECUTION, message="no")
    )
    assert outcome_of(outcome_record(succeeded)) == succeeded
    assert outcome_of(outcome_record(failed)) == failed


def test_an_unknown_outcome_is_typed_and_not_retryable() -> None:
    failure = unknown_outcome("c", "pay", "no hook")
    assert failure.error.kind is ToolErrorKind.UNKNOWN_OUTCOME
    assert not failure.error.retryable
