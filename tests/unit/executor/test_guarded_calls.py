"""What the run is told of a call a guard stopped, without Kafka: the trip then the call's
failure (kind `guard`), with stable event ids, recorded in the ledger whole."""

from __future__ import annotations

from loopline_events import (
    GuardHook,
    GuardTripped,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)
from loopline_runtime import Tripped
from loopline_tool_executor.domain import Stopped, outcome_of, outcome_record, published, stopped

CALL = ToolCall(call_id="call_1", tool="pay", arguments={"amount": 500})


def test_a_refused_call_fails_with_kind_guard_naming_the_guard_and_its_reason() -> None:
    trip = Tripped("spend_limit", GuardHook.BEFORE_TOOL, "amount = 500 is over 100", "fail")
    stop = stopped(CALL, trip)
    assert stop.tripped == GuardTripped(
        guard="spend_limit",
        hook=GuardHook.BEFORE_TOOL,
        reason="amount = 500 is over 100",
        action="fail",
        call_id="call_1",
        tool="pay",
    )
    assert (stop.failed.call_id, stop.failed.tool) == ("call_1", "pay")
    assert stop.failed.error.kind is ToolErrorKind.GUARD
    assert stop.failed.error.message == (
        "guard 'spend_limit' refused the call: amount = 500 is over 100"
    )


def test_a_withheld_output_says_so_and_a_secret_in_the_reason_is_redacted() -> None:
    trip = Tripped("scan", GuardHook.AFTER_TOOL, "found AKIAIOSFODNN7EXAMPLE", "tell")
    stop = stopped(CALL, trip, attempts=2)
    assert stop.failed.error.message == "guard 'scan' withheld the output: found [redacted]"
    assert stop.tripped.reason == "found [redacted]"
    assert stop.failed.attempts == 2


def test_a_trip_comes_before_its_failure_and_results_keep_their_places() -> None:
    ok = ToolCallSucceeded(call_id="a", tool="t", output="fine")
    stop = stopped(CALL, Tripped("spend_limit", GuardHook.BEFORE_TOOL, "too much", "tell"))
    other = ToolCallSucceeded(call_id="c", tool="t", output="fine too")
    assert published([ok, stop, other]) == [
        (0, ok),
        (4, stop.tripped),  # after every result's index: theirs stay what they were
        (1, stop.failed),
        (2, other),
    ]


def test_the_ledger_records_a_trip_with_its_failure() -> None:
    stop = stopped(CALL, Tripped("g", GuardHook.AFTER_TOOL, "no", "fail"))
    replayed = outcome_of(outcome_record(stop))
    assert replayed == stop
    assert isinstance(replayed, Stopped)
    plain = ToolCallFailed.model_validate(stop.failed.model_dump())
    assert outcome_of(outcome_record(plain)) == plain
