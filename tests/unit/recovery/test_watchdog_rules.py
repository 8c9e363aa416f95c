"""The watchdog's pure rules: what counts as progress, when a run is overdue, what is done."""

from __future__ import annotations

from dataclasses import replace

import pytest
from loopline_events import FailureReason
from loopline_recovery.adapters.table import decode, encode
from loopline_recovery.domain import (
    Fail,
    Kind,
    Location,
    Policy,
    Redrive,
    Redriven,
    Seen,
    Timing,
    Watch,
)
from loopline_recovery.domain.watch import after, judge, observe

TIMING = Timing(step_timeout_s=10.0, deadline_s=300.0)
POLICY = Policy(redrives=3, backoff=2.0, deadline_grace_s=1.0)
T0 = 1_000_000.0


def seen(kind: Kind, seq: int = 1, event_id: str = "e", offset: int = 0) -> Seen:
    topic = {Kind.GOAL: "agent.goals", Kind.CONTEXT: "agent.contexts"}.get(kind, "agent.x")
    return Seen(kind, "run-1", seq, event_id, Location(topic, 2, offset), tenant="acme")


def goal(at: float = T0, deadline_s: float | None = None) -> Seen:
    return Seen(
        Kind.GOAL,
        "run-1",
        0,
        "g",
        Location("agent.goals", 2, 7),
        tenant="acme",
        agent="default",
        occurred_at=at,
        deadline_s=deadline_s,
    )


def watching(*records: Seen, now: float = T0) -> Watch:
    watch: Watch | None = None
    for record in records:
        watch = observe(watch, record, TIMING, now)
    assert watch is not None
    return watch


def test_a_goal_starts_a_watch_with_the_profile_s_patience_and_deadline() -> None:
    watch = watching(goal())
    assert (watch.tenant, watch.seq, watch.kind, watch.tries) == ("acme", 0, Kind.GOAL, 0)
    assert watch.pending == Location("agent.goals", 2, 7)
    assert watch.due_at == T0 + 10.0
    assert watch.deadline_at == T0 + 300.0
    assert watching(goal(deadline_s=30.0)).deadline_at == T0 + 30.0  # the goal's own budget


def test_each_new_part_of_a_step_is_progress_and_moves_the_pending_record() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT, offset=3))
    moved = observe(watch, seen(Kind.DECISION, offset=5), TIMING, T0 + 4)
    assert moved is not None
    assert (moved.kind, moved.pending, moved.due_at) == (
        Kind.DECISION,
        Location("agent.x", 2, 5),
        T0 + 14,
    )
    observed = observe(moved, seen(Kind.OBSERVATION, event_id="o1"), TIMING, T0 + 6)
    assert observed is not None
    assert observed.pending == moved.pending  # a tool result is not re-driven
    assert (observed.observed, observed.due_at) == (("o1",), T0 + 16)
    following = observe(observed, seen(Kind.CONTEXT, seq=2, offset=9), TIMING, T0 + 7)
    assert following is not None
    assert (following.seq, following.kind, following.observed) == (2, Kind.CONTEXT, ())


@pytest.mark.parametrize(
    "repeat",
    [
        seen(Kind.CONTEXT, seq=1),  # memory re-publishing its outputs after a crash
        seen(Kind.DECISION, seq=1),  # the planner answering a re-drive from its cache
        seen(Kind.OBSERVATION, seq=1, event_id="o1"),  # the executor's ledger, the same
        seen(Kind.CONTEXT, seq=0),  # an older step
        seen(Kind.CONTROL, seq=2),  # a command is no progress
    ],
)
def test_repeats_and_old_steps_are_no_progress(repeat: Seen) -> None:
    watch = watching(
        goal(),
        seen(Kind.CONTEXT),
        seen(Kind.DECISION),
        seen(Kind.OBSERVATION, event_id="o1"),
    )
    tried = after(watch, Redrive(watch.pending or Location("", 0, 0), 1), T0 + 10, POLICY)
    assert observe(tried, repeat, TIMING, T0 + 11) is tried


def test_a_result_ends_the_watch_and_a_command_alone_starts_none() -> None:
    assert observe(watching(goal()), seen(Kind.RESULT), TIMING, T0) is None
    assert observe(None, seen(Kind.CONTROL), TIMING, T0) is None
    assert observe(None, seen(Kind.RESULT), TIMING, T0) is None


def test_only_a_goal_starts_a_watch() -> None:
    """A decision, a context or a tool result of a run never started is no run to watch: a
    flood of forged ones must not become thousands of watches and re-drives."""
    for kind in (Kind.CONTEXT, Kind.DECISION, Kind.OBSERVATION, Kind.CONTROL):
        assert observe(None, seen(kind, seq=4, offset=11), TIMING, T0) is None


def test_an_overdue_step_is_re_driven_with_backoff_then_the_run_fails_stalled() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT, offset=3))
    assert judge(watch, T0 + 9.9, POLICY) is None
    now, verdicts = T0 + 10, []
    for _ in range(4):
        verdict = judge(watch, now, POLICY)
        assert verdict is not None
        verdicts.append(verdict)
        watch = after(watch, verdict, now, POLICY)
        assert judge(watch, now, POLICY) is None  # nothing more until the next wait is over
        now = watch.due_at
    assert verdicts[:3] == [Redrive(Location("agent.contexts", 2, 3), n) for n in (1, 2, 3)]
    fail = verdicts[3]
    assert isinstance(fail, Fail)
    assert (fail.reason, fail.at_step, fail.first) == (FailureReason.STALLED, 1, True)
    assert "waiting for the planner's decision, re-driven 3 times" in fail.message
    # The waits grew: 10 s, then 20, 40 and 80 (backoff 2); memory then gets the longest wait
    # to answer before it is asked again.
    assert now == pytest.approx(T0 + 10 + 20 + 40 + 80 + 80)


def copy_of(record: Seen, tries: int, offset: int = 90) -> Seen:
    """The watchdog's re-published copy of `record`, as read back from the log."""
    where = Location(record.location.topic, record.location.partition, offset)
    return replace(record, location=where, redrive=Redriven(tries, record.location))


def test_a_re_driven_copy_read_from_the_log_is_a_try_not_progress() -> None:
    context = seen(Kind.CONTEXT, offset=3)
    watch = watching(goal(), context)
    # The instance that re-drove crashed before saving its table: the copy tells its successor.
    learned = observe(watch, copy_of(context, 1), TIMING, T0 + 10, POLICY)
    assert learned is not None
    assert (learned.tries, learned.progress_at, learned.due_at) == (1, T0, T0 + 10 + 20)
    assert judge(learned, T0 + 29, POLICY) is None
    assert judge(learned, T0 + 30, POLICY) == Redrive(context.location, 2)
    # Its own copy, read after it saved the try, changes nothing.
    assert observe(learned, copy_of(context, 1), TIMING, T0 + 11, POLICY) is learned


def test_a_copy_of_a_record_the_run_moved_past_tells_nothing() -> None:
    context = seen(Kind.CONTEXT, offset=3)
    moved = watching(goal(), context, seen(Kind.DECISION, offset=5))
    assert observe(moved, copy_of(context, 2), TIMING, T0 + 10, POLICY) is moved
    assert observe(None, copy_of(context, 2), TIMING, T0 + 10, POLICY) is None


def test_a_failed_run_without_a_result_is_asked_again_with_the_same_command() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT))
    watch = after(watch, Fail(FailureReason.STALLED, "x", 1, True), T0 + 10, POLICY)
    assert watch.failing is FailureReason.STALLED
    again = judge(watch, watch.due_at, POLICY)
    assert isinstance(again, Fail)
    assert (again.reason, again.first) == (FailureReason.STALLED, False)


def test_progress_after_a_request_to_fail_resumes_the_watch() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT))
    watch = after(watch, Fail(FailureReason.STALLED, "x", 1, True), T0 + 10, POLICY)
    moved = observe(watch, seen(Kind.DECISION), TIMING, T0 + 12)
    assert moved is not None
    assert (moved.failing, moved.tries, moved.due_at) == (None, 0, T0 + 22)


def test_a_silent_run_past_its_deadline_fails_with_deadline_even_before_it_is_overdue() -> None:
    watch = watching(goal(deadline_s=5.0), seen(Kind.CONTEXT))
    assert judge(watch, T0 + 5.5, POLICY) is None  # within the grace memory has
    verdict = judge(watch, T0 + 6.0, POLICY)
    assert isinstance(verdict, Fail)
    assert (verdict.reason, verdict.at_step) == (FailureReason.DEADLINE, None)
    assert "passed its deadline" in verdict.message


def test_a_watch_survives_its_stored_form() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT), seen(Kind.OBSERVATION, event_id="o1"))
    watch = after(watch, Fail(FailureReason.STALLED, "x", 1, True), T0 + 10, POLICY)
    assert decode(watch.run_id, encode(watch)) == watch
    bare = watching(goal(deadline_s=None))
    assert decode(bare.run_id, encode(bare).encode()) == bare


def waiting_until(until: float, seq: int = 1) -> Seen:
    record = seen(Kind.WAITING, seq=seq, event_id="w")
    record.until = until
    return record


def test_a_step_announced_as_waiting_is_due_a_step_timeout_after_its_expected_time() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT, offset=3), now=T0)
    waiting = observe(watch, waiting_until(T0 + 100), TIMING, T0 + 1)
    assert waiting is not None
    # Not stalled at T0 + 10, as it would be without the announcement: due at 100 + 10.
    assert (waiting.kind, waiting.pending, waiting.due_at) == (
        Kind.CONTEXT,
        watch.pending,
        T0 + 110,
    )
    assert judge(waiting, T0 + 60, POLICY) is None
    assert isinstance(judge(waiting, T0 + 111, POLICY), Redrive)
    # A later announcement moves it on again; an earlier one changes nothing.
    later = observe(waiting, waiting_until(T0 + 200), TIMING, T0 + 90)
    assert later is not None
    assert later.due_at == T0 + 210
    assert observe(later, waiting_until(T0 + 50), TIMING, T0 + 91) is later
    # The decision, when it comes, is progress as ever.
    decided = observe(later, seen(Kind.DECISION, offset=5), TIMING, T0 + 150)
    assert decided is not None
    assert (decided.kind, decided.due_at) == (Kind.DECISION, T0 + 160)


def test_a_wait_announced_for_another_step_or_after_the_decision_changes_nothing() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT, offset=3), seen(Kind.DECISION, offset=5))
    assert observe(watch, waiting_until(T0 + 100), TIMING, T0 + 1) is watch
    assert observe(watch, waiting_until(T0 + 100, seq=7), TIMING, T0 + 1) is watch


def test_a_waiting_run_still_fails_at_its_deadline() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT, offset=3))
    waiting = observe(watch, waiting_until(T0 + 10_000), TIMING, T0 + 1)
    assert waiting is not None
    verdict = judge(waiting, T0 + 302, POLICY)
    assert isinstance(verdict, Fail)
    assert verdict.reason is FailureReason.DEADLINE


def delegating_until(until: float, seq: int = 1) -> Seen:
    record = seen(Kind.DELEGATING, seq=seq, event_id="d")
    record.until = until
    return record


def test_a_step_waiting_for_a_sub_task_is_due_after_the_child_s_deadline() -> None:
    watch = watching(goal(), seen(Kind.CONTEXT, offset=3), seen(Kind.DECISION, offset=5))
    waiting = observe(watch, delegating_until(T0 + 100), TIMING, T0 + 1)
    assert waiting is not None
    assert waiting.due_at == T0 + 110
    assert judge(waiting, T0 + 60, POLICY) is None
    # Another call of the same step answers: progress, and the sub-task's wait still holds.
    answered = observe(waiting, seen(Kind.OBSERVATION, event_id="o1"), TIMING, T0 + 20)
    assert answered is not None
    assert (answered.kind, answered.due_at) == (Kind.OBSERVATION, T0 + 110)
    assert judge(answered, T0 + 60, POLICY) is None
    assert isinstance(judge(answered, T0 + 111, POLICY), Redrive)


def test_a_sub_task_s_wait_read_before_its_decision_still_holds_after_it() -> None:
    # The watchdog reads the parent's observations and decisions as they come: the wait may
    # come first. It proves the decision was made, so the decision is no news.
    watch = watching(goal(), seen(Kind.CONTEXT, offset=3))
    waiting = observe(watch, delegating_until(T0 + 100), TIMING, T0 + 1)
    assert waiting is not None
    assert (waiting.kind, waiting.due_at) == (Kind.DECISION, T0 + 110)
    decided = observe(waiting, seen(Kind.DECISION, offset=5), TIMING, T0 + 2)
    assert decided is not None
    assert decided.due_at == T0 + 110
