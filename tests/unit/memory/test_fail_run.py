"""FailRun: memory, the one writer of a run's end, folds recovery's request to fail a run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from loopline_events import (
    Envelope,
    FailRun,
    FailureReason,
    GoalSubmitted,
    ModelDecided,
    Payload,
    RunFailed,
    TokenUsage,
    ToolCall,
)
from loopline_memory.domain import Environment, Phase, RunState, RunStatus, StoreMemory, apply
from loopline_memory.domain.replay import fold
from loopline_runtime import AgentProfile

PROFILE = AgentProfile(name="default", system_prompt="Be brief.", tools=("calculator",))
# Events made by hand, not chained by cause: test_orphans.py tests those checks.
ENV = Environment(trust_log=True, profiles={"default": PROFILE})
RUN = "run-1"


def ev(payload: Payload, seq: int = 0, after: Envelope[Any] | None = None) -> Envelope[Any]:
    event = Envelope.of(payload, run_id=RUN, producer="test", seq=seq, tenant="acme")
    if after is not None:
        event = event.model_copy(update={"occurred_at": after.occurred_at + timedelta(seconds=1)})
    return event


def stalled(at_step: int | None = 1) -> FailRun:
    return FailRun(
        reason=FailureReason.STALLED,
        message="stalled at step 1",
        requested_by="recovery",
        at_step=at_step,
    )


def running() -> tuple[RunState, list[Envelope[Any]]]:
    goal = ev(GoalSubmitted(goal="2 + 3?"))
    call = ToolCall(call_id="c1", tool="calculator", arguments={"expression": "2+3"})
    usage = TokenUsage(prompt_tokens=40, completion_tokens=8)
    decided = ev(ModelDecided(model="demo", tool_calls=(call,), usage=usage), seq=1, after=goal)
    state = None
    for event in (goal, decided):
        state = apply(state, event, ENV).state
    assert state is not None
    assert state.step == 1
    return state, [goal, decided]


def test_a_running_run_asked_to_fail_ends_failed_with_the_reason_and_its_spend() -> None:
    state, events = running()
    step = apply(state, ev(stalled(), seq=1, after=events[-1]), ENV)
    assert step.state is not None
    assert (step.state.status, step.state.phase, step.state.failure) == (
        RunStatus.FAILED,
        Phase.DONE,
        FailureReason.STALLED,
    )
    (emitted,) = step.emissions
    assert emitted.topic == "agent.results"
    result = emitted.payload
    assert isinstance(result, RunFailed)
    assert (result.reason, result.message, result.steps) == (
        FailureReason.STALLED,
        "stalled at step 1",
        1,
    )
    assert result.usage.total_tokens == 48
    assert any(isinstance(r, StoreMemory) for r in step.requests)  # an episode, as any end


def test_a_request_for_a_step_the_run_has_left_changes_nothing() -> None:
    state, events = running()
    step = apply(state, ev(stalled(at_step=0), seq=0, after=events[-1]), ENV)
    assert not step.changed
    assert step.state is state
    assert "stale FailRun" in step.note


def test_a_request_for_a_finished_run_changes_nothing() -> None:
    state, events = running()
    failed = apply(state, ev(stalled(), after=events[-1]), ENV).state
    assert failed is not None
    again = FailRun(reason=FailureReason.POISON, message="other")
    step = apply(failed, ev(again, after=events[-1]), ENV)
    assert not step.changed
    assert step.state is failed


def test_the_request_s_reason_wins_over_a_deadline_passed_meanwhile() -> None:
    state, events = running()
    late = ev(stalled(at_step=None), seq=1, after=events[-1])
    late = late.model_copy(update={"occurred_at": late.occurred_at + timedelta(hours=1)})
    step = apply(state, late, ENV)
    assert step.state is not None
    assert step.state.failure is FailureReason.STALLED


def test_a_run_whose_goal_memory_never_read_is_recorded_failed_all_the_same() -> None:
    parked = FailRun(reason=FailureReason.INVALID_GOAL, message="schema: goal: not a string")
    event = ev(parked)
    step = apply(None, event, ENV)
    assert step.state is not None
    assert (step.state.run_id, step.state.tenant, step.state.status, step.state.failure) == (
        RUN,
        "acme",
        RunStatus.FAILED,
        FailureReason.INVALID_GOAL,
    )
    assert step.state.applied == (str(event.event_id),)
    (emitted,) = step.emissions
    assert isinstance(emitted.payload, RunFailed)
    assert emitted.payload.reason is FailureReason.INVALID_GOAL
    assert step.requests == ()  # no goal, nothing for long-term memory to learn
    # The same command again is a duplicate.
    assert not apply(step.state, event, ENV).changed


def test_replay_folds_the_request_like_memory_does() -> None:
    state, events = running()
    fail = ev(stalled(), seq=1, after=events[-1])
    live = apply(state, fail, ENV).state
    replayed = fold([*events, fail, fail], ENV)
    assert replayed.state == live
    assert replayed.ignored == 1
    assert [type(e.payload).__name__ for _, e in replayed.emissions][-1] == "RunFailed"
