"""The one-line descriptions the CLI prints and the page shows, for a run's sub-tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from loopline_events import Delegation, DelegationStarted, Envelope, GoalSubmitted

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
