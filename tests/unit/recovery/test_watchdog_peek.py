"""The watchdog reads a record's head, not its payload; goals alone are decoded whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from loopline_events import (
    ApprovalDecided,
    ApprovalRequested,
    Budget,
    ContextAssembled,
    DelayReason,
    Envelope,
    GoalSubmitted,
    Message,
    ModelCallDelayed,
    ModelDecided,
    RunCompleted,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
    TraceContext,
    encode_event,
)
from loopline_recovery.domain import (
    REDRIVE_HEADER,
    REDRIVE_OF_HEADER,
    Kind,
    Location,
    Redriven,
    peek,
)

WHERE = Location("agent.contexts", 3, 41)


def test_a_context_is_read_from_its_head_only() -> None:
    big = ContextAssembled(
        agent="default", model="demo", appended=(Message(role="user", content="x" * 50_000),)
    )
    event = Envelope.of(big, run_id="run-7", producer="memory", seq=4, tenant="acme")
    raw = encode_event(event)
    # The payload is cut off: a peek that needed it would fail.
    truncated = raw[:600]
    seen = peek(WHERE, truncated)
    assert seen is not None
    assert (seen.kind, seen.run_id, seen.seq, seen.tenant, seen.event_id) == (
        Kind.CONTEXT,
        "run-7",
        4,
        "acme",
        str(event.event_id),
    )
    assert seen.location == WHERE
    assert seen.agent is None  # not read: the goal said it


def test_a_goal_is_decoded_for_its_agent_time_and_budget() -> None:
    goal = GoalSubmitted(goal="2 + 3?", agent="calculator", budget=Budget(deadline_s=30))
    event = Envelope.of(goal, run_id="run-7", producer="sdk")
    seen = peek(WHERE, encode_event(event))
    assert seen is not None
    assert (seen.kind, seen.agent, seen.deadline_s) == (Kind.GOAL, "calculator", 30.0)
    assert seen.occurred_at == event.occurred_at.timestamp()


def test_every_loop_event_maps_to_its_kind() -> None:
    decided = ModelDecided(model="demo", final_answer="5")
    result = ToolCallSucceeded(call_id="c", tool="calculator", output="5")
    done = RunCompleted(answer="5", steps=1)
    kinds = [
        peek(WHERE, encode_event(Envelope.of(p, run_id="r", producer="x")))
        for p in (decided, result, done)
    ]
    assert [k.kind if k else None for k in kinds] == [Kind.DECISION, Kind.OBSERVATION, Kind.RESULT]


def test_escaped_run_ids_and_tenants_are_read_exactly() -> None:
    event = Envelope.of(
        ModelDecided(model="demo", final_answer="5"),
        run_id='run "quoted" \\ é',
        producer="planner",
        tenant='t\u00e9"n',
    )
    seen = peek(WHERE, encode_event(event))
    assert seen is not None
    assert (seen.run_id, seen.tenant) == ('run "quoted" \\ é', 't\u00e9"n')


def test_a_foreign_field_order_is_decoded_whole() -> None:
    event = Envelope.of(ModelDecided(model="demo", final_answer="5"), run_id="r", producer="x")
    reordered = json.dumps(dict(reversed(list(json.loads(encode_event(event)).items()))))
    seen = peek(WHERE, reordered.encode())
    assert seen is not None
    assert (seen.kind, seen.event_id) == (Kind.DECISION, str(event.event_id))


def test_a_re_driven_copy_says_which_try_of_which_record_it_is() -> None:
    event = Envelope.of(ModelDecided(model="demo", final_answer="5"), run_id="r", producer="x")
    headers = [(REDRIVE_HEADER, b"2"), (REDRIVE_OF_HEADER, b"agent.decisions:3:17")]
    seen = peek(WHERE, encode_event(event), headers)
    assert seen is not None
    assert seen.redrive == Redriven(2, Location("agent.decisions", 3, 17))
    assert (seen.kind, seen.run_id) == (Kind.DECISION, "r")


def test_re_driven_records_that_do_not_say_what_they_copy_and_non_events_are_not_followed() -> None:
    event = Envelope.of(ModelDecided(model="demo", final_answer="5"), run_id="r", producer="x")
    assert peek(WHERE, encode_event(event), [(REDRIVE_HEADER, b"1")]) is None
    garbled = [(REDRIVE_HEADER, b"1"), (REDRIVE_OF_HEADER, b"nowhere")]
    assert peek(WHERE, encode_event(event), garbled) is None
    assert peek(WHERE, b"\x00not json") is None
    assert peek(WHERE, b'{"type": "Nope", "run_id": "r", "payload": {}}') is None


def test_a_waiting_announcement_is_read_with_its_expected_time() -> None:
    until = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    delayed = ModelCallDelayed(model="openai:gpt-4o", reason=DelayReason.RATE_LIMIT, until=until)
    event = Envelope.of(delayed, run_id="run-7", producer="planner", seq=4, tenant="acme")
    seen = peek(WHERE, encode_event(event))
    assert seen is not None
    assert (seen.kind, seen.seq, seen.until) == (Kind.WAITING, 4, until.timestamp())


def test_a_tool_result_s_call_id_is_read_after_the_head_not_from_its_output() -> None:
    trace = TraceContext(
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01", tracestate="x" * 512
    )
    big = ToolCallSucceeded(call_id='call "7"', tool="fetch", output="y" * 50_000)
    event = Envelope.of(big, run_id="run-7", producer="tool-executor", seq=4, trace=trace)
    seen = peek(WHERE, encode_event(event)[:2_000])  # cut off: its output is never read
    assert seen is not None
    assert (seen.kind, seen.seq, seen.call_id) == (Kind.OBSERVATION, 4, 'call "7"')
    error = ToolError(kind=ToolErrorKind.DENIED, message="no")
    denial = ToolCallFailed(call_id="c2", tool="pay", error=error)
    failed = Envelope.of(denial, run_id="r", producer="memory")
    seen = peek(WHERE, encode_event(failed))
    assert seen is not None
    assert (seen.kind, seen.call_id) == (Kind.OBSERVATION, "c2")


def test_an_approval_request_is_read_with_its_call_time_and_policy() -> None:
    until = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    request = ApprovalRequested(
        call_id="c1", tool="pay", effect="side_effect", until=until, on_timeout="fail"
    )
    event = Envelope.of(request, run_id="run-7", producer="tool-executor", seq=4, tenant="acme")
    seen = peek(WHERE, encode_event(event))
    assert seen is not None
    assert (seen.kind, seen.seq, seen.call_id, seen.until, seen.on_timeout) == (
        Kind.HELD,
        4,
        "c1",
        until.timestamp(),
        "fail",
    )


def test_an_answer_to_a_held_call_is_read_with_its_call() -> None:
    answer = ApprovalDecided(call_id="c1", approved=True, decided_by="ops")
    event = Envelope.of(answer, run_id="run-7", producer="cli", tenant="acme")
    seen = peek(Location("agent.control", 3, 9), encode_event(event))
    assert seen is not None
    assert (seen.kind, seen.run_id, seen.call_id) == (Kind.ANSWERED, "run-7", "c1")
