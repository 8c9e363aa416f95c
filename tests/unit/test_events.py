"""Event contracts: round trips, decoding errors, upcasting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from loopline_events import (
    ALL_TOPICS,
    EVENT_TYPES,
    LOOP_TOPICS,
    OPERATIONS,
    STREAM,
    UPCASTERS,
    ApprovalDecided,
    ApprovalRequested,
    CancelRun,
    ContextAssembled,
    DecodeErrorKind,
    DelayReason,
    Delegation,
    DelegationStarted,
    Envelope,
    EventDecodeError,
    FailRun,
    FailureReason,
    ForkRecorded,
    GoalRejected,
    GoalSubmitted,
    GuardHook,
    GuardTripped,
    Message,
    ModelCallDelayed,
    ModelDecided,
    ModelFailed,
    ModelTextDelta,
    Payload,
    RedriveDeadLetter,
    RejectionReason,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunForked,
    RunSteered,
    TokenUsage,
    ToolCall,
    ToolCallApproved,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
    ToolSpec,
    decode_event,
    encode_event,
    topic_of,
)
from pydantic import ValidationError

EXAMPLES: list[Payload] = [
    GoalSubmitted(goal="What is 2 + 3?", agent="calculator", metadata={"team": "a"}),
    CancelRun(reason="user asked"),
    GoalRejected(reason=RejectionReason.DUPLICATE_RUN_ID, message="the run id is taken"),
    ContextAssembled(
        agent="default",
        model="demo",
        appended=(Message(role="system", content="be brief"), Message(role="user", content="hi")),
        tools=(ToolSpec(name="calculator", parameters={"type": "object"}),),
    ),
    ModelDecided(
        model="demo",
        tool_calls=(ToolCall(call_id="c1", tool="calculator", arguments={"expression": "2+3"}),),
        usage=TokenUsage(prompt_tokens=10, completion_tokens=3),
    ),
    ModelDecided(model="demo", final_answer="5"),
    ModelDecided(
        model="anthropic:claude-haiku-4-5",
        final_answer="5",
        usage=TokenUsage(
            prompt_tokens=1200, completion_tokens=3, cached_tokens=1000, cache_write_tokens=150
        ),
        fallback_from="anthropic:claude-sonnet-4-5",
    ),
    ModelFailed(model="demo", error="HTTP 500"),
    ModelCallDelayed(
        model="openai:gpt-4o",
        reason=DelayReason.RATE_LIMIT,
        until=datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC),
        message="waiting for rate limit: about 30 s",
    ),
    ModelTextDelta(model="openai:gpt-4o", attempt=2, offset=5, text=" world"),
    GoalSubmitted(
        goal="Find the capital of France",
        agent="researcher",
        parent=Delegation(parent_run_id="run-0", parent_step=2, call_id="call_2_0", depth=1),
    ),
    DelegationStarted(
        call_id="call_2_0",
        child_run_id="sub-1",
        agent="researcher",
        until=datetime(2026, 12, 1, 12, 5, tzinfo=UTC),
    ),
    ApprovalRequested(
        call_id="call_3_0",
        tool="pay",
        arguments={"amount": 40, "to": "acme"},
        effect="side_effect",
        policy="the profile holds 'pay' for approval",
        until=datetime(2026, 1, 1, 13, tzinfo=UTC),
    ),
    ApprovalDecided(call_id="call_3_0", approved=False, reason="not this month", decided_by="ana"),
    ToolCallApproved(
        agent="payer",
        call=ToolCall(call_id="call_3_0", tool="pay", arguments={"amount": 30}),
        decided_by="ana",
    ),
    RunSteered(message="Prefer sources from 2026.", sent_by="ana"),
    GuardTripped(
        guard="spend_limit",
        hook=GuardHook.BEFORE_TOOL,
        reason="amount 500 is over the limit of 100",
        action="tell",
        call_id="call_3_1",
        tool="pay",
    ),
    ToolCallSucceeded(call_id="c1", tool="calculator", output="5"),
    ToolCallFailed(
        call_id="c1",
        tool="http_get",
        error=ToolError(kind=ToolErrorKind.FORBIDDEN, message="private address"),
    ),
    RunCompleted(answer="5", steps=2),
    RunFailed(reason=FailureReason.MAX_STEPS, message="10 steps", steps=10),
    FailRun(
        reason=FailureReason.STALLED, message="no progress", requested_by="recovery", at_step=3
    ),
    RunCancelled(reason="user asked"),
    RunForked(
        parent_run_id="run-0",
        from_step=2,
        goal="2 + 3?",
        messages=(Message(role="system", content="be brief"), Message(role="user", content="2+3")),
    ),
    ForkRecorded(child_run_id="run-2", from_step=2),
    RedriveDeadLetter(dead_letter_id=uuid.UUID(int=7), requested_by="cli"),
    GoalRejected(reason=RejectionReason.DUPLICATE_RUN_ID, message="taken"),
]


def test_token_usage_adds_every_count_and_knows_the_full_price_part() -> None:
    a = TokenUsage(prompt_tokens=100, completion_tokens=5, cached_tokens=60, cache_write_tokens=30)
    total = a + TokenUsage(prompt_tokens=10, completion_tokens=1, cached_tokens=10)
    assert total == TokenUsage(
        prompt_tokens=110, completion_tokens=6, cached_tokens=70, cache_write_tokens=30
    )
    assert (a.uncached_prompt_tokens, total.uncached_prompt_tokens) == (10, 10)


def test_every_event_type_has_an_example() -> None:
    assert {type(p).TYPE for p in EXAMPLES} | {"DeadLettered"} == set(EVENT_TYPES)


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda p: type(p).TYPE)
def test_round_trip(payload: Payload) -> None:
    event = Envelope.of(payload, run_id="run-1", producer="test", seq=3, tenant="acme")
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert type(decoded.payload) is type(payload)
    assert decoded.type == type(payload).TYPE


def test_follow_keeps_the_run_and_records_the_cause() -> None:
    goal = Envelope.of(GoalSubmitted(goal="g"), run_id="r", producer="cli", tenant="t")
    done = goal.follow(RunCompleted(answer="a", steps=1), producer="memory", seq=4)
    assert (done.run_id, done.tenant, done.seq) == ("r", "t", 4)
    assert done.causation_id == goal.event_id
    assert done.event_id != goal.event_id


def test_a_minimal_goal_from_any_kafka_client_is_accepted() -> None:
    event = decode_event(b'{"type":"GoalSubmitted","run_id":"r1","payload":{"goal":"2+3"}}')
    assert isinstance(event.payload, GoalSubmitted)
    assert (event.payload.goal, event.payload.agent, event.tenant) == ("2+3", "default", "default")
    assert event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\x00\xff", DecodeErrorKind.UNDECODABLE),
        (b"", DecodeErrorKind.UNDECODABLE),
        (b"[1, 2]", DecodeErrorKind.SCHEMA),
        (b'{"type": "Nope", "run_id": "r"}', DecodeErrorKind.UNKNOWN_TYPE),
        (b'{"run_id": "r"}', DecodeErrorKind.UNKNOWN_TYPE),
        (b'{"type": "GoalSubmitted", "run_id": "r", "payload": {}}', DecodeErrorKind.SCHEMA),
        (
            b'{"type": "GoalSubmitted", "run_id": "", "payload": {"goal": "g"}}',
            DecodeErrorKind.SCHEMA,
        ),
        (
            b'{"type": "GoalSubmitted", "schema_version": 2, "run_id": "r", "payload": {}}',
            DecodeErrorKind.UNKNOWN_VERSION,
        ),
        (
            b'{"type": "GoalSubmitted", "schema_version": "x", "run_id": "r", "payload": {}}',
            DecodeErrorKind.SCHEMA,
        ),
        (
            b'{"type": "GoalSubmitted", "run_id": "r", "occurred_at": "2026-01-01T00:00:00",'
            b' "payload": {"goal": "g"}}',
            DecodeErrorKind.SCHEMA,
        ),
    ],
)
def test_bad_bytes_raise_a_typed_error(raw: bytes, kind: DecodeErrorKind) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)
    assert caught.value.kind == kind
    assert not caught.value.retryable


def test_deeply_nested_json_is_rejected_not_crashing() -> None:
    deep = (
        b'{"type":"GoalSubmitted","run_id":"r","payload":{"goal":"g","metadata":'
        + (b"[" * 100_000)
        + b"]" * 100_000
        + b"}}"
    )
    with pytest.raises(EventDecodeError):
        decode_event(deep)


def test_a_decision_has_tool_calls_or_an_answer() -> None:
    with pytest.raises(ValidationError):
        ModelDecided(model="m")
    with pytest.raises(ValidationError):
        ModelDecided(model="m", final_answer="x", tool_calls=(ToolCall(call_id="c", tool="t"),))


def test_payloads_are_frozen() -> None:
    goal = GoalSubmitted(goal="g")
    with pytest.raises(ValidationError):
        goal.goal = "other"  # type: ignore[misc]


def test_older_versions_are_upcast_on_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 RunCancelled (with `why`) is read by a v2 reader (with `reason`)."""

    def upcast_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        out["reason"] = out.pop("why", "")
        return out

    monkeypatch.setattr(RunCancelled, "VERSION", 2)
    monkeypatch.setitem(UPCASTERS, ("RunCancelled", 1), upcast_v1_to_v2)
    old = b'{"type":"RunCancelled","schema_version":1,"run_id":"r","payload":{"why":"stop"}}'
    event = decode_event(old)
    assert isinstance(event.payload, RunCancelled)
    assert event.payload.reason == "stop"
    assert event.schema_version == 2


def test_follow_gives_the_same_id_for_the_same_cause_and_index() -> None:
    goal = Envelope.of(GoalSubmitted(goal="g"), run_id="r", producer="cli")
    done = RunCompleted(answer="a", steps=1)
    assert (
        goal.follow(done, producer="memory").event_id
        == goal.follow(done, producer="memory").event_id
    )
    assert (
        goal.follow(done, producer="memory", index=1).event_id
        != goal.follow(done, producer="memory").event_id
    )
    assert (
        goal.follow(done, producer="planner").event_id
        != goal.follow(done, producer="memory").event_id
    )


def test_every_loop_event_has_one_topic() -> None:
    for name in EVENT_TYPES:
        spec = topic_of(name)
        assert (spec is None) == (name in ("DeadLettered", "ModelTextDelta")), name
        on = [t.name for t in (*LOOP_TOPICS, OPERATIONS) if name in t.events]
        # A guard's trip goes with what it guarded: the model's decision, or a tool's outcome.
        expected = 2 if name == "GuardTripped" else 1 if spec is not None else 0
        assert len(on) == expected, (name, on)
    # Streamed text is not part of a run's history: its own topic, kept an hour, no DLQ.
    assert STREAM.events == ("ModelTextDelta",)
    assert STREAM.retention_ms == 3600 * 1000
    assert STREAM in ALL_TOPICS
    assert STREAM not in LOOP_TOPICS
