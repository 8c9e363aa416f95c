"""The one-line descriptions the CLI prints and the page shows, for a run's sub-tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from loopline_events import (
    ApprovalDecided,
    ApprovalRequested,
    Delegation,
    DelegationStarted,
    Envelope,
    GoalSubmitted,
    RunSteered,
    SigningKey,
)

from loopline._describe import describe


def test_a_sub_task_s_goal_names_its_parent_and_the_parent_s_wait_names_the_child() -> None:
    goal = GoalSubmitted(
        goal="What is 6 * 7?",
        agent="calculator",
        parent=Delegation(parent_run_id="lead-1", parent_step=1, call_id="call_1_0", depth=1),
    )
    label, text = describe(Envelope.of(goal, run_id="sub-1", producer="memory"))
    assert (label, text) == ("goal", "'What is 6 * 7?' (agent calculator, a sub-task of lead-1)")

    started = DelegationStarted(
        call_id="call_1_0",
        child_run_id="sub-1",
        agent="calculator",
        until=datetime(2026, 12, 1, 12, 5, tzinfo=UTC),
    )
    label, text = describe(Envelope.of(started, run_id="lead-1", producer="memory", seq=1))
    assert (label, text) == ("sub-task", "calculator as run sub-1, until 12:05:00 UTC")


def test_a_held_call_its_decision_and_a_message_read_as_one_line_each() -> None:
    held = ApprovalRequested(
        call_id="call_2_0",
        tool="send_payment",
        arguments={"amount": 120},
        effect="side_effect",
        until=datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
    )
    assert describe(Envelope.of(held, run_id="r", producer="tool-executor")) == (
        "held",
        'send_payment({"amount": 120}) waits for approval until 13:00:00 UTC, then deny '
        "(call call_2_0)",
    )
    denied = ApprovalDecided(call_id="call_2_0", approved=False, reason="no", decided_by="ann")
    assert describe(Envelope.of(denied, run_id="r", producer="cli")) == (
        "denied",
        "call call_2_0 by ann: no",
    )
    approved = ApprovalDecided(call_id="call_2_0", approved=True, arguments={"amount": 1})
    signed = SigningKey("client-acme", bytes(32)).sign(
        Envelope.of(approved, run_id="r", producer="cli")
    )
    assert describe(signed) == ("approved", "call call_2_0 with edited arguments by client-acme")
    told = RunSteered(message="Use EUR.", sent_by="gateway:abc")
    assert describe(Envelope.of(told, run_id="r", producer="gateway")) == (
        "told",
        "'Use EUR.' by gateway:abc",
    )
