"""The watchdog's rules for calls held for a person's approval: a wait until its time, then
the policy's timeout (a denial the watchdog signs, or the run failed); the deadline first."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from loopline_events import FailureReason, OnTimeout
from loopline_recovery.adapters.table import decode, encode
from loopline_recovery.domain import Expire, Fail, Held, Kind, Location, Policy, Redrive, Seen
from loopline_recovery.domain.watch import DENIED, Timing, Watch, after, judge, observe
from loopline_recovery.watchdog import Timings, Watchdog

TIMING = Timing(step_timeout_s=10.0, deadline_s=3_600.0)
POLICY = Policy(redrives=3, backoff=2.0, deadline_grace_s=1.0)
T0 = 1_000_000.0


def seen(kind: Kind, seq: int = 1, event_id: str = "e", call_id: str | None = None) -> Seen:
    topic = {Kind.GOAL: "agent.goals", Kind.CONTEXT: "agent.contexts"}.get(kind, "agent.x")
    return Seen(kind, "run-1", seq, event_id, Location(topic, 2, 0), "acme", call_id=call_id)


def goal(deadline_s: float | None = None) -> Seen:
    where = Location("agent.goals", 2, 7)
    return Seen(Kind.GOAL, "run-1", 0, "g", where, "acme", occurred_at=T0, deadline_s=deadline_s)


def held(
    call_id: str, until: float, on_timeout: OnTimeout = "deny", seq: int = 1, event_id: str = ""
) -> Seen:
    record = seen(Kind.HELD, seq=seq, event_id=event_id or f"req-{call_id}", call_id=call_id)
    record.until, record.on_timeout = until, on_timeout
    return record


def answered(call_id: str) -> Seen:
    return seen(Kind.ANSWERED, seq=0, event_id=f"ans-{call_id}", call_id=call_id)


def result(call_id: str, seq: int = 1) -> Seen:
    return seen(Kind.OBSERVATION, seq=seq, event_id=f"res-{call_id}", call_id=call_id)


def fold(watch: Watch | None, *records: Seen, now: float = T0) -> Watch:
    for record in records:
        watch = observe(watch, record, TIMING, now, POLICY)
    assert watch is not None
    return watch


def deciding(deadline_s: float | None = None) -> Watch:
    """A run at step 1 whose decision was made."""
    return fold(None, goal(deadline_s), seen(Kind.CONTEXT), seen(Kind.DECISION))


def test_a_held_call_is_a_wait_not_a_stall_until_its_time() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 3_000), now=T0 + 1)
    assert watch.held == (Held("pay", T0 + 3_000, "deny"),)
    # Long past the step timeout (and its re-drives' waits), a person may still decide.
    for now in (T0 + 11, T0 + 500, T0 + 2_999.9):
        assert judge(watch, now, POLICY) is None


def test_a_request_proves_the_decision_even_read_before_it() -> None:
    """The run topics are read apart: a request may come before its decision, or even its
    context. It is progress, and the decision is no news after it."""
    early = fold(None, goal(), held("pay", until=T0 + 100), now=T0 + 1)
    assert (early.seq, early.kind, early.tries) == (1, Kind.DECISION, 0)
    assert [h.call_id for h in early.held] == ["pay"]
    later = fold(early, seen(Kind.CONTEXT), seen(Kind.DECISION), now=T0 + 2)
    assert later.held == early.held
    assert judge(later, T0 + 50, POLICY) is None


def test_a_request_seen_again_or_of_an_older_step_changes_nothing() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 100), now=T0 + 1)
    assert observe(watch, held("pay", until=T0 + 100), TIMING, T0 + 5) is watch
    assert observe(watch, held("old", until=T0 + 900, seq=0), TIMING, T0 + 5) is watch


def test_no_decision_in_time_denies_the_call_and_waits_a_step_timeout_for_memory() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 100), now=T0 + 1)
    verdict = judge(watch, T0 + 100, POLICY)
    assert verdict == Expire(("pay",), "deny", 1, DENIED, first=True)
    assert verdict.message.startswith("no one decided within")
    denied = after(watch, verdict, T0 + 100, POLICY)
    assert denied.held == (Held("pay", T0 + 100, "deny", expired=1),)
    assert judge(denied, T0 + 109, POLICY) is None
    # Its own denial, read back from agent.control, is no answer it waits for.
    assert observe(denied, answered("pay"), TIMING, T0 + 101) is denied
    # Memory records the denial as the call's result: the hold is over, the run moves on.
    recorded = fold(denied, result("pay"), now=T0 + 102)
    assert (recorded.held, recorded.due_at) == ((), T0 + 112)
    assert judge(recorded, T0 + 111, POLICY) is None


def test_a_denial_nothing_follows_is_repeated_with_backoff_then_the_run_fails_stalled() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 100), now=T0 + 1)
    now, verdicts = T0 + 100, []
    for _ in range(5):
        verdict = judge(watch, now, POLICY)
        assert verdict is not None
        verdicts.append(verdict)
        watch = after(watch, verdict, now, POLICY)
        assert judge(watch, now, POLICY) is None  # nothing more until the next wait is over
        now = watch.due_at
    repeats = [Expire(("pay",), "deny", 1, DENIED, first=False)] * 3
    assert verdicts[:4] == [Expire(("pay",), "deny", 1, DENIED, first=True), *repeats]
    fail = verdicts[4]
    assert isinstance(fail, Fail)
    assert (fail.reason, fail.at_step) == (FailureReason.STALLED, 1)
    assert "the denial of held call(s) pay, denied 4 times" in fail.message
    # Waits of 10, 20, 40, 80 s (backoff 2): the same patience as re-drives.
    assert now == pytest.approx(T0 + 100 + 10 + 20 + 40 + 80 + 80)


def test_a_fail_policy_fails_the_run_with_approval_timeout_and_asks_again() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 100, on_timeout="fail"), now=T0 + 1)
    verdict = judge(watch, T0 + 100, POLICY)
    assert isinstance(verdict, Expire)
    assert (verdict.call_ids, verdict.on_timeout, verdict.first) == (("pay",), "fail", True)
    fail = verdict.fail
    assert (fail.reason, fail.at_step) == (FailureReason.APPROVAL_TIMEOUT, 1)
    assert "no one decided on held call(s) pay of step 1" in fail.message
    failing = after(watch, verdict, T0 + 100, POLICY)
    assert failing.failing is FailureReason.APPROVAL_TIMEOUT
    assert judge(failing, T0 + 179, POLICY) is None  # memory's longest wait: 10 * 2 ** 3
    again = judge(failing, T0 + 180, POLICY)
    assert again == Fail(FailureReason.APPROVAL_TIMEOUT, fail.message, 1, first=False)
    assert observe(failing, seen(Kind.RESULT), TIMING, T0 + 181) is None


def test_one_call_failing_the_run_outweighs_others_denied_at_the_same_time() -> None:
    watch = fold(
        deciding(),
        held("pay", until=T0 + 100),
        held("wire", until=T0 + 100, on_timeout="fail"),
        now=T0 + 1,
    )
    verdict = judge(watch, T0 + 100, POLICY)
    assert isinstance(verdict, Expire)
    assert (verdict.call_ids, verdict.on_timeout) == (("wire",), "fail")


def test_a_decision_before_its_time_ends_the_wait_and_no_timeout_follows() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 100), now=T0 + 1)
    decided = fold(watch, answered("pay"), now=T0 + 30)
    assert (decided.held, decided.due_at) == ((), T0 + 40)
    # The step timeout resumes from the answer: the approved call runs now.
    assert judge(decided, T0 + 39, POLICY) is None
    assert isinstance(judge(decided, T0 + 40, POLICY), Redrive)
    # Its result, when it comes, is progress as ever; its time passing is nothing.
    ran = fold(decided, result("pay"), now=T0 + 35)
    assert (ran.held, ran.kind, ran.due_at) == ((), Kind.OBSERVATION, T0 + 45)
    assert not isinstance(judge(ran, T0 + 100, POLICY), Expire)


def test_a_call_s_result_ends_its_wait_and_the_next_step_ends_every_wait() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 100), held("wire", until=T0 + 200), now=T0 + 1)
    one = fold(watch, result("pay"), now=T0 + 20)
    assert [h.call_id for h in one.held] == ["wire"]
    assert judge(one, T0 + 150, POLICY) is None  # "wire" still waits for a person
    assert judge(one, T0 + 200, POLICY) == Expire(("wire",), "deny", 1, DENIED, first=True)
    following = fold(one, seen(Kind.CONTEXT, seq=2), now=T0 + 30)
    assert (following.seq, following.held) == (2, ())


def test_a_result_of_another_call_is_progress_and_keeps_the_wait() -> None:
    watch = fold(deciding(), held("pay", until=T0 + 100), now=T0 + 1)
    other = fold(watch, result("lookup"), now=T0 + 5)
    assert [h.call_id for h in other.held] == ["pay"]
    assert judge(other, T0 + 99, POLICY) is None


def test_the_deadline_wins_over_a_person_s_wait() -> None:
    watch = fold(deciding(deadline_s=60.0), held("pay", until=T0 + 10_000), now=T0 + 1)
    assert judge(watch, T0 + 60.5, POLICY) is None  # within the grace memory has
    verdict = judge(watch, T0 + 61, POLICY)
    assert isinstance(verdict, Fail)
    assert (verdict.reason, verdict.at_step) == (FailureReason.DEADLINE, None)


def test_the_deadline_wins_over_a_timeout_due_at_the_same_time() -> None:
    watch = fold(deciding(deadline_s=60.0), held("pay", until=T0 + 61), now=T0 + 1)
    verdict = judge(watch, T0 + 61, POLICY)
    assert isinstance(verdict, Fail)
    assert verdict.reason is FailureReason.DEADLINE


def test_held_calls_survive_a_restart() -> None:
    """The next owner of the partition loads the watch from Redis: its held calls, and how
    often each was denied already, go on from there."""
    watch = fold(
        deciding(), held("pay", until=T0 + 100), held("wire", until=T0 + 900.5), now=T0 + 1
    )
    denied = after(watch, Expire(("pay",), "deny", 1, DENIED, True), T0 + 100, POLICY)
    restored = decode(denied.run_id, encode(denied))
    assert restored == denied
    assert restored.held == (
        Held("pay", T0 + 100, "deny", expired=1),
        Held("wire", T0 + 900.5, "deny"),
    )
    assert judge(restored, T0 + 900.5, POLICY) == Expire(("wire",), "deny", 1, DENIED, True)


def test_a_watch_without_held_calls_is_stored_as_before_them() -> None:
    """A watch stored by a watchdog that knew no held calls loads, and one without any is
    stored in that same form."""
    watch = deciding()
    stored = json.loads(encode(watch))
    assert len(stored) == 11
    assert decode(watch.run_id, json.dumps(stored)) == watch
    # A field a later version adds is left aside.
    assert decode(watch.run_id, json.dumps([*stored, [], "later"])) == watch


class Table:
    """Watches in a dict, as Redis would keep them (in their stored form)."""

    def __init__(self) -> None:
        self.stored: dict[int, dict[str, str]] = {}

    async def load(self, partition: int) -> dict[str, Watch]:
        return {run: decode(run, text) for run, text in self.stored.get(partition, {}).items()}

    async def save(self, changed: Mapping[int, Mapping[str, Watch | None]]) -> None:
        for partition, runs in changed.items():
            kept = self.stored.setdefault(partition, {})
            for run_id, watch in runs.items():
                if watch is None:
                    kept.pop(run_id, None)
                else:
                    kept[run_id] = encode(watch)


class Recorded:
    """What the sweep did, in order."""

    def __init__(self) -> None:
        self.done: list[tuple[str, object]] = []

    async def redrive(self, where: Location, tries: int) -> bool:
        self.done.append(("redrive", tries))
        return True

    async def fail(self, watch: Watch, fail: Fail) -> None:
        self.done.append(("fail", fail.reason))

    async def deny(self, watch: Watch, expire: Expire) -> None:
        self.done.append(("deny", expire.call_ids))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def test_the_sweep_denies_at_the_call_s_time_and_a_restarted_watchdog_goes_on() -> None:
    table, actions, clock = Table(), Recorded(), Clock()
    timings = Timings({}, default_step_timeout_s=10.0)
    first = Watchdog(table, actions, timings, POLICY, clock)
    await first.assigned({2})
    batch = [goal(), seen(Kind.CONTEXT), seen(Kind.DECISION), held("pay", until=T0 + 100)]
    await first.observe([(2, record) for record in batch])
    fresh = {2: T0 + 1_000}  # read to the end long after: only the clock decides
    for clock.now in (T0 + 11, T0 + 50, T0 + 99):
        await first.sweep(fresh)
    assert actions.done == []  # waiting for a person, not stalled
    clock.now = T0 + 100
    await first.sweep(fresh)
    await first.sweep(fresh)
    assert actions.done == [("deny", ("pay",))]
    # A new owner of the partition (a restart) knows the call was denied once already.
    second = Watchdog(table, actions, timings, POLICY, clock)
    await second.assigned({2})
    clock.now = T0 + 109
    await second.sweep(fresh)
    assert actions.done == [("deny", ("pay",))]
    clock.now = T0 + 110
    await second.sweep(fresh)
    assert actions.done == [("deny", ("pay",)), ("deny", ("pay",))]
