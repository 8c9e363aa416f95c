"""Held calls and steering in memory's reducer: a call the executor holds waits in the step
until a person decides; an approval hands it to the executor and only its result answers it;
a denial is its result at once; an answer is taken once, from someone who may give it; what a
person tells a run reaches its next context; a guard's trip ends the run or tells the model."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from loopline_events import (
    ANY_TENANT,
    CONTEXTS,
    DECISIONS,
    RESULTS,
    ApprovalDecided,
    ApprovalRequested,
    CancelRun,
    ContextAssembled,
    Envelope,
    FailureReason,
    GoalSubmitted,
    GuardHook,
    GuardTripped,
    Keyring,
    ModelDecided,
    RunFailed,
    RunSteered,
    SigningKey,
    TokenUsage,
    ToolCall,
    ToolCallApproved,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)
from loopline_memory.domain import Environment, RunState, RunStatus, Step, apply
from loopline_memory.domain.replay import fold
from loopline_runtime import AgentProfile, ApprovalPolicy

PROFILES = {
    "payer": AgentProfile(
        name="payer",
        system_prompt="Pay bills.",
        tools=("calculator",),
        max_steps=8,
        approvals=ApprovalPolicy(tools=("calculator",), approvers=("ana",)),
    )
}
SERVICES = SigningKey("services", os.urandom(32))
ACME = SigningKey("ana", os.urandom(32))
BOB = SigningKey("bob", os.urandom(32))
OTHER = SigningKey("globex", os.urandom(32))
ENV = Environment(
    profiles=PROFILES,
    keyring=Keyring.of(
        [(SERVICES, [ANY_TENANT]), (ACME, ["acme"]), (BOB, ["acme"]), (OTHER, ["globex"])]
    ),
)
PAY = ToolCall(call_id="call_1_0", tool="calculator", arguments={"expression": "2+2"})
UNTIL = datetime(2030, 1, 1, tzinfo=UTC)


class Run:
    """A run as the services drive it: each event follows the one it answers."""

    def __init__(self) -> None:
        goal = GoalSubmitted(goal="Pay the rent.", agent="payer")
        self.events: list[Envelope[Any]] = [
            SERVICES.sign(Envelope.of(goal, run_id="run-1", producer="sdk", tenant="acme"))
        ]
        first = apply(None, self.events[0], ENV)
        assert first.state is not None, first.note
        self.state: RunState = first.state
        self.context = self.events[0].follow(first.emissions[0].payload, producer="memory", seq=1)
        self.decision: Envelope[Any] | None = None

    def fold(self, event: Envelope[Any]) -> Step:
        step = apply(self.state, event, ENV)
        if step.changed and step.state is not None:
            self.events.append(event)
            self.state = step.state
            contexts = [e for e in step.emissions if e.topic == CONTEXTS.name]
            if contexts:
                self.context = event.follow(
                    contexts[0].payload, producer="memory", seq=self.state.step
                )
        return step

    def decide(self, *calls: ToolCall) -> Step:
        self.decision = self.context.follow(
            ModelDecided(model="demo", tool_calls=calls, usage=TokenUsage(prompt_tokens=10)),
            producer="planner",
        )
        return self.fold(self.decision)

    def hold(self, call: ToolCall = PAY, index: int = 0) -> Step:
        assert self.decision is not None
        request = ApprovalRequested(
            call_id=call.call_id,
            tool=call.tool,
            arguments=call.arguments,
            effect="pure",
            approvers=("ana",),
            until=UNTIL,
        )
        return self.fold(self.decision.follow(request, producer="tool-executor", index=index))

    def answer(self, key: SigningKey = ACME, tenant: str = "acme", **decided: Any) -> Step:
        command = Envelope.of(
            ApprovalDecided(**{"call_id": PAY.call_id, "decided_by": key.key_id, **decided}),
            run_id="run-1",
            producer="cli",
            tenant=tenant,
            seq=self.state.step,
        )
        return self.fold(key.sign(command))


def only(step: Step, kind: type) -> Any:
    found = [e.payload for e in step.emissions if isinstance(e.payload, kind)]
    assert len(found) == 1, step.emissions
    return found[0]


def held_run() -> Run:
    run = Run()
    run.decide(PAY)
    step = run.hold()
    assert step.changed, step.note
    assert [h.call_id for h in run.state.held] == [PAY.call_id]
    assert run.state.pending_calls == (PAY.call_id,)
    return run


def test_a_held_call_waits_and_an_approval_hands_it_to_the_executor() -> None:
    run = held_run()
    step = run.answer(approved=True, arguments={"expression": "3+3"})
    go = only(step, ToolCallApproved)
    assert [e.topic for e in step.emissions] == [DECISIONS.name]
    assert go.call == ToolCall(
        call_id="call_1_0", tool="calculator", arguments={"expression": "3+3"}
    )
    assert run.state.held == ()
    assert run.state.pending_calls == (PAY.call_id,)  # it has not run yet
    approval = run.events[-1].follow(go, producer="memory")
    result = approval.follow(
        ToolCallSucceeded(call_id=PAY.call_id, tool="calculator", output="6"),
        producer="tool-executor",
    )
    step = run.fold(result)
    context = only(step, ContextAssembled)
    assert context.appended[-1].content == "6"
    assert run.state.step == 2


def test_a_result_that_does_not_answer_the_approval_is_an_orphan() -> None:
    run = held_run()
    assert run.decision is not None
    early = run.decision.follow(
        ToolCallSucceeded(call_id=PAY.call_id, tool="calculator", output="4"),
        producer="tool-executor",
        index=1,
    )
    assert run.fold(early).orphan  # held: it has not run
    run.answer(approved=True)
    assert run.fold(early).orphan  # approved: only the approval's result answers it


def test_a_denial_is_the_calls_result_the_model_reads() -> None:
    run = held_run()
    step = run.answer(approved=False, reason="not this month")
    failed = only(step, ToolCallFailed)
    assert failed.error.kind is ToolErrorKind.DENIED
    assert "ana did not approve this call: not this month" in failed.error.message
    context = only(step, ContextAssembled)
    assert "not this month" in context.appended[-1].content
    echo = run.events[-1].follow(failed, producer="memory")
    assert not run.fold(echo).changed  # memory's own record, folded already


def test_an_answer_is_taken_once_and_only_from_who_may_give_it() -> None:
    run = held_run()
    assert run.answer(key=BOB, approved=True).forbidden  # not among the approvers
    assert run.answer(key=OTHER, tenant="acme", approved=True).forbidden  # acts for globex
    assert run.answer(key=SERVICES, approved=False).changed  # the watchdog's timeout
    twice = run.answer(approved=True)
    assert twice.orphan
    assert "was denied by services already" in twice.note


def test_cancelling_a_waiting_run_withdraws_its_held_calls() -> None:
    run = held_run()
    cancel = Envelope.of(CancelRun(reason="stop"), run_id="run-1", producer="cli", tenant="acme")
    step = run.fold(ACME.sign(cancel))
    assert run.state.status is RunStatus.CANCELLED
    assert run.state.held == ()
    assert [e.topic for e in step.emissions] == [RESULTS.name]
    assert not run.answer(approved=True).changed


def test_replay_folds_the_request_and_the_decision_and_asks_no_one() -> None:
    run = held_run()
    run.answer(approved=False, reason="no")
    replayed = fold(run.events, ENV)
    assert replayed.state is not None
    assert replayed.state.decided == run.state.decided
    assert replayed.state.step == run.state.step == 2


def test_a_message_to_a_running_run_reaches_its_next_context_after_the_steps_results() -> None:
    run = Run()
    run.decide(ToolCall(call_id="c1", tool="calculator", arguments={"expression": "1+1"}))
    said = Envelope.of(
        RunSteered(message="Use euros."), run_id="run-1", producer="cli", tenant="acme"
    )
    assert run.fold(ACME.sign(said)).emissions == ()
    assert run.decision is not None
    result = run.decision.follow(
        ToolCallSucceeded(call_id="c1", tool="calculator", output="2"), producer="tool-executor"
    )
    context = only(run.fold(result), ContextAssembled)
    assert [(m.role, m.content) for m in context.appended[-2:]] == [
        ("tool", "2"),
        ("user", "Use euros."),
    ]
    forged = Envelope.of(RunSteered(message="x"), run_id="run-1", producer="cli", tenant="acme")
    assert run.fold(OTHER.sign(forged)).forbidden


def test_a_model_guard_that_says_fail_ends_the_run_and_tell_asks_again() -> None:
    run = Run()
    spent = TokenUsage(prompt_tokens=40, completion_tokens=5)
    tell = run.context.follow(
        GuardTripped(
            guard="g", hook=GuardHook.AFTER_MODEL, reason="no", action="tell", usage=spent
        ),
        producer="planner",
    )
    step = run.fold(tell)
    assert run.state.usage == spent  # set aside, but spent
    context = only(step, ContextAssembled)
    assert "set aside by guard 'g' (after_model): no" in context.appended[-1].content
    assert run.state.step == 2
    fail = run.context.follow(
        GuardTripped(guard="g", hook=GuardHook.BEFORE_MODEL, reason="secret", action="fail"),
        producer="planner",
    )
    ended = only(run.fold(fail), RunFailed)
    assert ended.reason is FailureReason.GUARD


def test_a_tool_guard_that_says_fail_ends_the_run() -> None:
    run = Run()
    run.decide(ToolCall(call_id="c1", tool="calculator", arguments={"expression": "1+1"}))
    assert run.decision is not None
    trip = GuardTripped(
        guard="spend_limit",
        hook=GuardHook.BEFORE_TOOL,
        reason="over",
        action="fail",
        call_id="c1",
        tool="calculator",
    )
    ended = only(run.fold(run.decision.follow(trip, producer="tool-executor")), RunFailed)
    assert ended.reason is FailureReason.GUARD
    assert run.state.held == ()
