"""The watchdog's rules: what a run waits for, when it is overdue, and what to do about it.

Pure: records seen and the time in, a run's watch and a verdict out. Time is wall-clock
seconds (epoch) given by the caller: the time the watchdog *saw* an event, not the event's own
time, so a watchdog that lags behind the log waits longer rather than judging too early.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from loopline_events import FailureReason, OnTimeout


class Kind(IntEnum):
    """What a record is to the watchdog; the order is the order of a step's parts."""

    GOAL = 0
    """GoalSubmitted or RunForked: the run starts; memory's first context is awaited."""
    CONTEXT = 1
    """ContextAssembled: the planner's decision is awaited."""
    DECISION = 2
    """ModelDecided or ModelFailed: tool results, then memory's next context or result."""
    OBSERVATION = 3
    """A tool result: progress within the step."""
    RESULT = 4
    """RunCompleted, RunFailed or RunCancelled: the run ended."""
    CONTROL = 5
    """A command (cancel, fail, fork lineage): asks for progress, is none itself."""
    WAITING = 6
    """ModelCallDelayed: the planner holds the step's call until capacity frees; the run
    waits, it is not stalled (outside the order of a step's parts)."""
    DELEGATING = 7
    """DelegationStarted: a tool call of the step is a sub-task, a child run that may take as
    long as its deadline; the run waits for its result, it is not stalled (outside the order
    of a step's parts, and proof that the step's decision was made)."""
    HELD = 8
    """ApprovalRequested: a tool call of the step waits for a person until its `until`; the
    run waits, it is not stalled (outside the order of a step's parts, and proof that the
    step's decision was made)."""
    ANSWERED = 9
    """ApprovalDecided: an answer to a held call (a command: it ends the wait for a person,
    and is no progress itself)."""


DRIVING = (Kind.GOAL, Kind.CONTEXT, Kind.DECISION)
"""Records that ask a service for the next part of a step: re-publishing one re-drives it."""

WAITING_FOR = {
    Kind.GOAL: "memory's first context",
    Kind.CONTEXT: "the planner's decision",
    Kind.DECISION: "the tool results and memory's next step",
    Kind.OBSERVATION: "the remaining tool results and memory's next step",
}


@dataclass(frozen=True, slots=True)
class Location:
    """Where a record lies in the log: enough to read it again and re-publish it as it was."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Redriven:
    """A record the watchdog re-published: which try, and where the original lies."""

    tries: int
    original: Location


@dataclass(slots=True)  # not frozen: one is made per record read, and frozen init costs more
class Seen:
    """What the watchdog reads of one record: little, so that watching costs little."""

    kind: Kind
    run_id: str
    seq: int
    event_id: str
    location: Location
    tenant: str = "default"
    agent: str | None = None
    """Agent profile, when the record names it cheaply (goals)."""
    occurred_at: float | None = None
    """When the goal was submitted (goals only): the run's deadline counts from it."""
    deadline_s: float | None = None
    """The goal's own wall-clock budget, if it sets one (goals only)."""
    redrive: Redriven | None = None
    """Set when the record is a copy the watchdog re-published: no progress, but the log's
    word on how many tries the run's pending step has had."""
    until: float | None = None
    """When a waiting call is expected to be made (ModelCallDelayed), a sub-task's deadline
    (DelegationStarted), when a held call's wait ends (ApprovalRequested)."""
    call_id: str | None = None
    """The tool call a tool result, approval request or answer is about."""
    on_timeout: OnTimeout | None = None
    """What becomes of a held call no one decides on in time (ApprovalRequested only)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """A run's patience: from its agent profile."""

    step_timeout_s: float
    deadline_s: float | None = None
    """The profile's wall-clock budget of a run, unless its goal sets one."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How hard the watchdog tries before it gives up on a run."""

    redrives: int = 3
    """Re-drives of a stalled step before the run fails as `stalled`."""
    backoff: float = 1.5
    """Each wait is this many times the previous one: step_timeout, times 1.5, times 2.25, …"""
    deadline_grace_s: float = 1.0
    """Past the deadline, memory ends a moving run itself; this long after it, the watchdog
    ends a silent one."""


@dataclass(frozen=True, slots=True)
class Held:
    """A tool call of the run's step waiting for a person's approval."""

    call_id: str
    until: float
    """When the wait ends with `on_timeout`."""
    on_timeout: OnTimeout
    expired: int = 0
    """How many times the watchdog carried out `on_timeout` for it (0: still waiting)."""


@dataclass(frozen=True, slots=True)
class Watch:
    """One active run, as the watchdog tracks it."""

    run_id: str
    tenant: str
    step_timeout_s: float
    deadline_at: float | None
    seq: int
    """The run's step, by the latest context seen (0 before the first)."""
    kind: Kind
    """How far into the step the run got."""
    observed: tuple[str, ...]
    """Ids of the tool results and approval requests seen in this step: one seen again is no
    progress."""
    pending: Location | None
    """The latest goal, context or decision: what a re-drive re-publishes."""
    progress_at: float
    due_at: float
    """When the run is overdue unless it moves on."""
    tries: int = 0
    """Re-drives since the last progress."""
    failing: FailureReason | None = None
    """Set once the watchdog asked memory to fail the run; the run's result is awaited."""
    held: tuple[Held, ...] = ()
    """Calls of this step waiting for a person (or, once expired, for memory to record the
    watchdog's denial)."""

    @property
    def waiting_for(self) -> str:
        expired = [h.call_id for h in self.held if h.expired]
        if expired:
            return f"memory to record the denial of held call(s) {', '.join(expired)}"
        return WAITING_FOR.get(self.kind, "the run's next step")


@dataclass(frozen=True, slots=True)
class Redrive:
    """Re-publish the pending record (the `tries`-th time)."""

    location: Location
    tries: int


@dataclass(frozen=True, slots=True)
class Fail:
    """Ask memory to fail the run."""

    reason: FailureReason
    message: str
    at_step: int | None
    first: bool
    """False when the request is repeated because no result came."""


@dataclass(frozen=True, slots=True)
class Expire:
    """Carry out the timeout of held calls no one decided on in time: `deny` them (an
    answer the watchdog signs) or `fail` the run."""

    call_ids: tuple[str, ...]
    on_timeout: OnTimeout
    at_step: int
    message: str
    """Why: a denial's reason (shown to the model), or the failed run's message."""
    first: bool
    """False when the command is repeated because nothing followed it."""

    @property
    def fail(self) -> Fail:
        """The request to fail the run that a `fail` timeout is."""
        reason = FailureReason.APPROVAL_TIMEOUT
        return Fail(reason, self.message, at_step=self.at_step, first=self.first)


Verdict = Redrive | Fail | Expire | None


def observe(
    watch: Watch | None, seen: Seen, timing: Timing, now: float, policy: Policy | None = None
) -> Watch | None:
    """The run's watch after `seen`; None once the run ended (or was never watched)."""
    if seen.redrive is not None:
        return _redriven(watch, seen.redrive, now, policy or Policy())
    if seen.kind is Kind.RESULT:
        return None
    if watch is None:
        # Only a goal starts a watch: any other record of a run never started (or ended) is
        # no run to watch, and a flood of forged ones must not become thousands of watches.
        return _start(seen, timing, now) if seen.kind is Kind.GOAL else None
    if seen.kind in (Kind.WAITING, Kind.DELEGATING):
        return _waiting(watch, seen, now)
    if seen.kind is Kind.HELD:
        return _held(watch, seen, now)
    if seen.kind is Kind.ANSWERED:
        return _answered(watch, seen, now)
    if not _moves_on(watch, seen):
        return watch
    same_step = seen.seq == watch.seq
    observed = watch.observed if same_step else ()
    held = watch.held if same_step else ()  # a held call's step is over once the run moves on
    if seen.kind is Kind.OBSERVATION:
        observed = (*observed, seen.event_id)
        held = tuple(h for h in held if h.call_id != seen.call_id)  # its result answers it
    due = now + watch.step_timeout_s
    if same_step and watch.kind >= Kind.DECISION and watch.tries == 0 and not watch.failing:
        due = max(due, watch.due_at)  # a sub-task's announced wait still holds
    return replace(
        watch,
        seq=seen.seq,
        kind=max(seen.kind, watch.kind) if same_step else seen.kind,
        observed=observed,
        pending=seen.location if seen.kind in DRIVING else watch.pending,
        progress_at=now,
        due_at=due,
        tries=0,
        failing=None,
        held=held,
    )


def _waiting(watch: Watch, seen: Seen, now: float) -> Watch:
    """The step waits until `seen.until` (its model call for capacity, before the decision;
    or a sub-task for its child run, after it): the run is alive, and is due a step timeout
    after that (a later announcement moves it on)."""
    if seen.seq != watch.seq or seen.until is None:
        return watch  # about a step the run has moved past
    if seen.kind is Kind.WAITING and watch.kind is not Kind.CONTEXT:
        return watch  # a model call's wait before its context was seen, or after its decision
    if seen.kind is Kind.DELEGATING and watch.kind is Kind.GOAL:
        return watch
    if watch.failing is not None:
        return watch  # memory was asked to end it already (its deadline, say)
    due = max(watch.due_at, seen.until + watch.step_timeout_s)
    kind = max(watch.kind, Kind.DECISION) if seen.kind is Kind.DELEGATING else watch.kind
    if due == watch.due_at and watch.tries == 0 and kind == watch.kind:
        return watch
    return replace(watch, kind=kind, progress_at=now, due_at=due, tries=0)


def _held(watch: Watch, seen: Seen, now: float) -> Watch:
    """A call of the step waits for a person until `seen.until`: the run is not overdue
    before then (see `judge`). The request is progress (the executor answered the decision),
    and proves the decision was made, even if the watchdog has not read it (or the step's
    context) yet: the run topics are read apart."""
    if seen.seq < watch.seq or seen.until is None or seen.call_id is None:
        return watch  # about a step the run has moved past (or not a request it can follow)
    if watch.failing is not None:
        return watch  # memory was asked to end it already
    same_step = seen.seq == watch.seq
    if same_step and (
        seen.event_id in watch.observed or any(h.call_id == seen.call_id for h in watch.held)
    ):
        return watch  # the executor publishing its request again
    hold = Held(seen.call_id, seen.until, seen.on_timeout or "deny")
    due = now + watch.step_timeout_s
    return replace(
        watch,
        seq=seen.seq,
        kind=max(watch.kind, Kind.DECISION) if same_step else Kind.DECISION,
        observed=(*watch.observed, seen.event_id) if same_step else (seen.event_id,),
        held=(*watch.held, hold) if same_step else (hold,),
        progress_at=now,
        due_at=max(due, watch.due_at) if same_step else due,
        tries=0,
    )


def _answered(watch: Watch, seen: Seen, now: float) -> Watch:
    """An answer to a held call ends its wait for a person: the step is due a step timeout
    after it (memory and the executor carry it out). An answer to a call the watchdog has
    expired already (its own denial, read back, or a person's too late) changes nothing:
    only the call's result says memory took an answer."""
    held = tuple(h for h in watch.held if h.call_id != seen.call_id or h.expired)
    if len(held) == len(watch.held):
        return watch
    return replace(watch, held=held, due_at=max(watch.due_at, now + watch.step_timeout_s))


def _redriven(watch: Watch | None, copy: Redriven, now: float, policy: Policy) -> Watch | None:
    """A re-driven copy of the pending record: its try counts, whoever re-drove it.

    Usually the watch already says so (its watchdog saved it after re-driving). A watchdog
    that crashed or lost the partition between re-driving and saving left the try in the log
    alone: the one reading the copy now takes it, so a try is never made twice."""
    if watch is None or watch.pending != copy.original or watch.failing is not None:
        return watch  # a copy of a record the run has moved past: nothing to learn
    if copy.tries <= watch.tries:
        return watch
    return after(watch, Redrive(copy.original, copy.tries), now, policy)


def _deadline(seen: Seen, timing: Timing) -> float | None:
    """When the run's wall-clock budget ends, as memory computes it (from the goal's time)."""
    asked, allowed = seen.deadline_s, timing.deadline_s
    budget = min(asked, allowed) if asked and allowed else asked or allowed  # a goal only lowers
    return seen.occurred_at + budget if seen.occurred_at is not None and budget else None


def _start(seen: Seen, timing: Timing, now: float) -> Watch:
    return Watch(
        run_id=seen.run_id,
        tenant=seen.tenant,
        step_timeout_s=timing.step_timeout_s,
        deadline_at=_deadline(seen, timing),
        seq=seen.seq,
        kind=seen.kind,
        observed=(seen.event_id,) if seen.kind is Kind.OBSERVATION else (),
        pending=seen.location if seen.kind in DRIVING else None,
        progress_at=now,
        due_at=now + timing.step_timeout_s,
    )


def _moves_on(watch: Watch, seen: Seen) -> bool:
    """Whether `seen` is new progress, not a repeat of what the run already did.

    Duplicates are common and harmless: a service re-publishing its outputs after a crash,
    or answering a re-drive with what it recorded. They must not count as progress, or a run
    stalled downstream of them would be re-driven forever.
    """
    if seen.kind is Kind.CONTROL:
        return False
    if seen.seq != watch.seq:
        return seen.seq > watch.seq
    if seen.kind is Kind.OBSERVATION:
        return seen.event_id not in watch.observed
    return seen.kind > watch.kind


def judge(watch: Watch, now: float, policy: Policy) -> Verdict:
    """What to do about the run now: nothing, re-drive its pending step, carry out the
    timeout of held calls no one decided on, or fail it. The run's deadline comes first: a
    person's wait never extends it."""
    past_deadline = _past_deadline(watch, now, policy)
    if watch.held and watch.failing is None and not past_deadline:
        lapsed = tuple(h for h in watch.held if not h.expired and now >= h.until)
        if lapsed:
            return _expire(watch, lapsed, first=True)
        if any(not h.expired for h in watch.held):
            return None  # a person may still decide: waiting is not stalling
    if now < watch.due_at and not past_deadline:
        return None
    if watch.failing is not None:  # asked already; no result yet: ask again (same command)
        return _fail(watch, watch.failing, first=False)
    if past_deadline:
        return _fail(watch, FailureReason.DEADLINE, first=True)
    if watch.held:  # all denied by the watchdog, and memory recorded none of them
        if max(h.expired for h in watch.held) <= policy.redrives:
            return _expire(watch, watch.held, first=False)
        return _fail(watch, FailureReason.STALLED, first=True)
    if watch.tries < policy.redrives and watch.pending is not None:
        return Redrive(watch.pending, watch.tries + 1)
    return _fail(watch, FailureReason.STALLED, first=True)


DENIED = "no one decided within the time allowed for its approval"
"""The reason of the watchdog's denial of a held call, which the model is shown."""


def _expire(watch: Watch, calls: tuple[Held, ...], *, first: bool) -> Expire:
    """Carry out the timeout of `calls`: if any of them fails the run, the run fails."""
    failing = tuple(h.call_id for h in calls if h.on_timeout == "fail")
    if failing:
        return Expire(failing, "fail", watch.seq, _approval_timeout(watch, failing), first)
    return Expire(tuple(h.call_id for h in calls), "deny", watch.seq, DENIED, first)


def _approval_timeout(watch: Watch, call_ids: tuple[str, ...]) -> str:
    return (
        f"no one decided on held call(s) {', '.join(call_ids)} of step {watch.seq} "
        "within the time allowed for their approval"
    )


def _past_deadline(watch: Watch, now: float, policy: Policy) -> bool:
    return (
        watch.failing is None
        and watch.deadline_at is not None
        and now >= watch.deadline_at + policy.deadline_grace_s
    )


def _fail(watch: Watch, reason: FailureReason, *, first: bool) -> Fail:
    if reason is FailureReason.DEADLINE:
        message = f"the run passed its deadline with no event since step {watch.seq}"
        return Fail(reason, message, at_step=None, first=first)
    if reason is FailureReason.APPROVAL_TIMEOUT:
        lapsed = tuple(h.call_id for h in watch.held if h.expired and h.on_timeout == "fail")
        return Fail(reason, _approval_timeout(watch, lapsed), at_step=watch.seq, first=first)
    if watch.held:
        tried = f"denied {max(h.expired for h in watch.held)} times"
    else:
        tried = f"re-driven {watch.tries} times"
    message = (
        f"stalled at step {watch.seq}: waiting for {watch.waiting_for}, {tried} without progress"
    )
    return Fail(reason, message, at_step=watch.seq, first=first)


def after(watch: Watch, verdict: Verdict, now: float, policy: Policy) -> Watch:
    """The run's watch once `verdict` was acted on: the next wait is longer (backoff)."""
    if isinstance(verdict, Redrive):
        wait = watch.step_timeout_s * policy.backoff**verdict.tries
        return replace(watch, tries=verdict.tries, due_at=now + wait)
    if isinstance(verdict, Fail):  # asked again only if memory does not answer for long
        wait = watch.step_timeout_s * policy.backoff**policy.redrives
        return replace(watch, failing=verdict.reason, due_at=now + wait)
    if isinstance(verdict, Expire):
        expired = tuple(
            replace(h, expired=h.expired + 1) if h.call_id in verdict.call_ids else h
            for h in watch.held
        )
        watch = replace(watch, held=expired)
        if verdict.on_timeout == "fail":
            return after(watch, verdict.fail, now, policy)
        # A step timeout for memory to record the denial, longer each time it is repeated.
        times = max(h.expired for h in expired if h.call_id in verdict.call_ids)
        wait = watch.step_timeout_s * policy.backoff ** (times - 1)
        return replace(watch, due_at=max(watch.due_at, now + wait))
    return watch
