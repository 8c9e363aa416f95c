"""The run reducer: pure, idempotent, and the loop's rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopline_events import (
    Budget,
    CancelRun,
    ContextAssembled,
    Envelope,
    FailureReason,
    GoalRejected,
    GoalSubmitted,
    ModelDecided,
    ModelFailed,
    Payload,
    RejectionReason,
    RunCancelled,
    RunCompleted,
    RunFailed,
    TokenUsage,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
    ToolSpec,
)
from loopline_memory.domain import Environment, Phase, RunState, RunStatus, apply
from loopline_runtime import AgentProfile

PROFILE = AgentProfile(
    name="default",
    system_prompt="Be brief.",
    model="demo",
    tools=("calculator", "current_time"),
    max_steps=3,
    deadline_s=60,
)
# Events made by hand, not chained by cause: test_orphans.py tests those checks.
ENV = Environment(
    trust_log=True,
    profiles={"default": PROFILE},
    tools={
        "calculator": ToolSpec(name="calculator", parameters={"type": "object"}),
        "current_time": ToolSpec(name="current_time"),
        "http_get": ToolSpec(name="http_get"),
    },
)
RUN = "run-1"


def ev(payload: Payload, seq: int = 0, after: Envelope[Any] | None = None) -> Envelope[Any]:
    event = Envelope.of(payload, run_id=RUN, producer="test", seq=seq)
    if after is not None:  # keep time moving forward, as on the wire
        event = event.model_copy(update={"occurred_at": after.occurred_at + timedelta(seconds=1)})
    return event


def calls(*names: str) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(call_id=f"c{i}", tool=n) for i, n in enumerate(names))


def start(goal: str = "2 + 3?", **budget: Any) -> tuple[RunState, Envelope[Any]]:
    event = ev(GoalSubmitted(goal=goal, budget=Budget(**budget)))
    step = apply(None, event, ENV)
    assert step.state is not None
    return step.state, event


def test_a_goal_starts_the_run_with_its_first_context() -> None:
    goal = ev(GoalSubmitted(goal="2 + 3?"))
    step = apply(None, goal, ENV)
    assert step.state is not None
    assert (step.state.status, step.state.phase, step.state.step) == (
        RunStatus.RUNNING,
        Phase.DECISION,
        1,
    )
    (emission,) = step.emissions
    context = emission.payload
    assert emission.topic == "agent.contexts"
    assert isinstance(context, ContextAssembled)
    assert [m.role for m in context.appended] == ["system", "user"]
    assert context.appended[0].content == "Be brief."
    assert (context.base, context.window) == (0, None)
    assert [t.name for t in context.tools] == ["calculator", "current_time"]  # not http_get
    assert step.state.deadline_at == goal.occurred_at + timedelta(seconds=60)


def test_an_unknown_agent_fails_the_run_at_once() -> None:
    step = apply(None, ev(GoalSubmitted(goal="g", agent="nobody")), ENV)
    assert step.state is not None
    assert step.state.status is RunStatus.FAILED
    (emission,) = step.emissions
    assert isinstance(emission.payload, RunFailed)
    assert emission.payload.reason is FailureReason.INVALID_GOAL
    assert "nobody" in emission.payload.message


def test_the_next_context_waits_for_every_parallel_result() -> None:
    state, goal = start()
    decided = ev(
        ModelDecided(model="demo", tool_calls=calls("calculator", "current_time")), 1, goal
    )
    state = apply(state, decided, ENV).state  # type: ignore[assignment]
    assert state.phase is Phase.OBSERVATIONS
    assert state.pending_calls == ("c0", "c1")

    first = ev(ToolCallSucceeded(call_id="c1", tool="current_time", output="noon"), 1, decided)
    step = apply(state, first, ENV)
    assert step.emissions == ()
    assert step.state is not None
    assert step.state.pending_calls == ("c0",)

    second = ev(
        ToolCallFailed(
            call_id="c0",
            tool="calculator",
            error=ToolError(kind=ToolErrorKind.TIMEOUT, message="slow"),
        ),
        1,
        first,
    )
    step = apply(step.state, second, ENV)
    (emission,) = step.emissions
    context = emission.payload
    assert isinstance(context, ContextAssembled)
    assert step.state is not None
    assert step.state.step == 2
    assert context.base == 2  # the planner holds the first two; these follow
    assert [m.role for m in context.appended] == ["assistant", "tool", "tool"]
    # Results follow the order the model asked for them in, not the order they arrived in.
    assert [m.content for m in context.appended[-2:]] == ["error (timeout): slow", "noon"]


def test_a_final_answer_completes_the_run_with_its_usage() -> None:
    state, goal = start()
    usage = TokenUsage(prompt_tokens=10, completion_tokens=2)
    decided = ev(ModelDecided(model="demo", final_answer="5", usage=usage), 1, goal)
    step = apply(state, decided, ENV)
    assert step.state is not None
    assert step.state.status is RunStatus.COMPLETED
    (emission,) = step.emissions
    assert emission.topic == "agent.results"
    # The demo model's nominal price: $1 per million tokens read, $2 per million written.
    assert emission.payload == RunCompleted(
        answer="5", steps=1, usage=usage, cost_usd=0.000014, folded=(decided.event_id,)
    )


def test_each_context_and_result_journals_the_inputs_folded_since_the_last_one() -> None:
    state, goal = start()
    assert state.unannounced == ()  # the goal's context carried it
    decided = ev(
        ModelDecided(model="demo", tool_calls=calls("calculator", "current_time")), 1, goal
    )
    step = apply(state, decided, ENV)
    assert step.emissions == ()
    assert step.state is not None
    assert step.state.unannounced == (decided.event_id,)
    results = [
        ev(ToolCallSucceeded(call_id=f"c{i}", tool=t, output="x"), 1, decided)
        for i, t in enumerate(("calculator", "current_time"))
    ]
    for result in results:
        step = apply(step.state, result, ENV)
    (emission,) = step.emissions
    assert isinstance(emission.payload, ContextAssembled)
    assert emission.payload.folded == (decided.event_id, *(r.event_id for r in results))
    assert step.state is not None
    assert step.state.unannounced == ()


def loop_once(state: RunState, previous: Envelope[Any]) -> tuple[RunState, Envelope[Any], Any]:
    decided = ev(ModelDecided(model="demo", tool_calls=calls("calculator")), state.step, previous)
    state = apply(state, decided, ENV).state  # type: ignore[assignment]
    done = ev(ToolCallSucceeded(call_id="c0", tool="calculator", output="1"), state.step, decided)
    step = apply(state, done, ENV)
    assert step.state is not None
    return step.state, done, step.emissions


def test_a_run_past_max_steps_fails_with_that_reason() -> None:
    state, last = start()
    for _ in range(2):
        state, last, emissions = loop_once(state, last)
        assert isinstance(emissions[0].payload, ContextAssembled)
    state, last, emissions = loop_once(state, last)
    assert state.status is RunStatus.FAILED
    assert state.failure is FailureReason.MAX_STEPS
    assert isinstance(emissions[0].payload, RunFailed)
    assert emissions[0].payload.steps == 3


def test_the_goal_can_lower_max_steps() -> None:
    state, last = start(max_steps=1)
    state, last, emissions = loop_once(state, last)
    assert isinstance(emissions[0].payload, RunFailed)
    assert emissions[0].payload.reason is FailureReason.MAX_STEPS


def test_an_event_past_the_deadline_fails_the_run() -> None:
    state, goal = start(deadline_s=5)
    late = ev(ModelDecided(model="demo", final_answer="late"), 1)
    late = late.model_copy(update={"occurred_at": goal.occurred_at + timedelta(seconds=6)})
    step = apply(state, late, ENV)
    assert step.state is not None
    assert step.state.failure is FailureReason.DEADLINE


def test_a_model_failure_fails_the_run() -> None:
    state, goal = start()
    step = apply(state, ev(ModelFailed(model="demo", error="HTTP 500"), 1, goal), ENV)
    assert step.state is not None
    assert step.state.failure is FailureReason.MODEL_ERROR
    assert step.state.failure_message == "HTTP 500"


def test_cancel_ends_the_run_and_later_events_change_nothing() -> None:
    state, goal = start()
    cancelled = ev(CancelRun(reason="enough"), 0, goal)
    step = apply(state, cancelled, ENV)
    assert step.state is not None
    assert step.state.status is RunStatus.CANCELLED
    assert isinstance(step.emissions[0].payload, RunCancelled)
    after = apply(step.state, ev(ModelDecided(model="demo", final_answer="x"), 1, cancelled), ENV)
    assert not after.changed
    assert after.state == step.state


@pytest.mark.parametrize(
    "stale",
    [
        ModelDecided(model="demo", final_answer="from step 7"),
        ToolCallSucceeded(call_id="c9", tool="calculator", output="?"),
    ],
)
def test_stale_or_unknown_events_change_nothing(stale: Payload) -> None:
    state, goal = start()
    step = apply(state, ev(stale, 7, goal), ENV)
    assert not step.changed
    assert step.state == state
    assert step.emissions == ()


def test_a_second_decision_for_the_same_step_is_ignored() -> None:
    state, goal = start()
    first = ev(ModelDecided(model="demo", tool_calls=calls("calculator")), 1, goal)
    state = apply(state, first, ENV).state  # type: ignore[assignment]
    again = ev(ModelDecided(model="demo", final_answer="different"), 1, first)
    assert not apply(state, again, ENV).changed


def test_events_for_unknown_runs_are_ignored() -> None:
    step = apply(None, ev(ModelDecided(model="demo", final_answer="x"), 1), ENV)
    assert step.state is None
    assert not step.changed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=40))
def test_redelivery_changes_nothing(redeliver: list[int]) -> None:
    """Folding any events a second time (as after a crash) leaves state and outputs alone."""
    state, goal = start(max_steps=50)
    history: list[Envelope[Any]] = [goal]
    last = goal
    for _ in range(10):
        decided = ev(ModelDecided(model="demo", tool_calls=calls("calculator")), state.step, last)
        done = ev(
            ToolCallSucceeded(call_id="c0", tool="calculator", output="1"), state.step, decided
        )
        for event in (decided, done):
            state = apply(state, event, ENV).state  # type: ignore[assignment]
            history.append(event)
        last = done
    for index in redeliver:
        step = apply(state, history[index % len(history)], ENV)
        assert step.state == state
        assert step.emissions == ()
        assert not step.changed


def test_a_result_read_before_its_decision_is_kept() -> None:
    """Decisions and results travel on different topics: a result can be read first."""
    state, goal = start()
    decided = ev(ModelDecided(model="demo", tool_calls=calls("calculator")), 1, goal)
    result = ev(ToolCallSucceeded(call_id="c0", tool="calculator", output="5"), 1, decided)
    early = apply(state, result, ENV)
    assert early.changed
    assert early.emissions == ()
    step = apply(early.state, decided, ENV)
    assert step.state is not None
    assert step.state.step == 2
    assert isinstance(step.emissions[0].payload, ContextAssembled)


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(4)))
def test_what_the_run_holds_does_not_depend_on_how_topics_interleave(order: list[int]) -> None:
    """Only the journal of which events came in which order does (replays follow it)."""
    state, goal = start()
    decided = ev(
        ModelDecided(model="demo", tool_calls=calls("calculator", "calculator", "current_time")),
        1,
        goal,
    )
    results = [
        ev(ToolCallSucceeded(call_id=f"c{i}", tool="calculator", output=str(i)), 1, decided)
        for i in range(3)
    ]
    in_order = state
    for event in (decided, *results):
        in_order = apply(in_order, event, ENV).state  # type: ignore[assignment]
    shuffled = state
    for index in order:
        shuffled = apply(shuffled, (decided, *results)[index], ENV).state  # type: ignore[assignment]
    journal = {"applied", "unannounced", "context_id"}  # the context's id names its cause
    assert shuffled.model_dump(exclude=journal) == in_order.model_dump(exclude=journal)
    assert in_order.step == 2


def test_a_second_goal_for_a_taken_run_id_is_rejected_and_the_run_goes_on() -> None:
    state, goal = start()
    again = apply(state, goal, ENV)  # the same goal, redelivered: nothing
    assert (again.changed, again.emissions) == (False, ())
    other = ev(GoalSubmitted(goal="something else"), 0, goal)
    step = apply(state, other, ENV)
    (emission,) = step.emissions
    assert emission.topic == "agent.results"
    assert isinstance(emission.payload, GoalRejected)
    assert emission.payload.reason is RejectionReason.DUPLICATE_RUN_ID
    assert step.state is not None
    assert (step.state.goal, step.state.step, step.state.status) == (
        state.goal,
        state.step,
        RunStatus.RUNNING,
    )
