"""A replay folds a run's inputs in the order memory folded them, whatever their order in the
log: memory's contexts and result journal it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopline_events import (
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    CancelRun,
    Envelope,
    GoalRejected,
    GoalSubmitted,
    ModelDecided,
    RejectionReason,
    ToolCall,
    ToolCallSucceeded,
    ToolSpec,
)
from loopline_memory.domain import Environment, RunState, apply
from loopline_memory.domain.replay import NoGoalError, fold, in_folding_order
from loopline_runtime import AgentProfile

# Events made by hand, not chained by cause: test_orphans.py tests those checks.
ENV = Environment(
    trust_log=True,
    profiles={"a": AgentProfile(name="a", system_prompt="p", tools=("calculator",), max_steps=9)},
    tools={"calculator": ToolSpec(name="calculator")},
)
TOPIC = {
    "GoalSubmitted": GOALS.name,
    "ModelDecided": DECISIONS.name,
    "ToolCallSucceeded": OBSERVATIONS.name,
    "CancelRun": CONTROL.name,
}


def memory(events: list[Envelope[Any]]) -> tuple[RunState, list[tuple[str, Envelope[Any]]]]:
    """Fold `events` in the order given, as memory would read them; its state and outputs."""
    state: RunState | None = None
    outputs: list[tuple[str, Envelope[Any]]] = []
    for event in events:
        step = apply(state, event, ENV)
        if step.changed:
            state = step.state
            outputs += [
                (e.topic, event.follow(e.payload, producer="memory", index=i))
                for i, e in enumerate(step.emissions)
            ]
    assert state is not None
    return state, outputs


def a_step_then_a_cancel() -> list[Envelope[Any]]:
    """A goal, a decision with two calls, their results, and a cancel sent meanwhile."""
    goal = Envelope.of(GoalSubmitted(goal="g", agent="a"), run_id="r", producer="sdk")
    calls = tuple(ToolCall(call_id=f"c{i}", tool="calculator") for i in range(2))
    decided = goal.follow(ModelDecided(model="demo", tool_calls=calls), producer="planner", seq=1)
    results = [
        decided.follow(
            ToolCallSucceeded(call_id=c.call_id, tool="calculator", output="1"),
            producer="x",
            index=i,
        )
        for i, c in enumerate(calls)
    ]
    cancel = Envelope.of(CancelRun(reason="enough"), run_id="r", producer="cli", seq=1)
    return [goal, decided, *results, cancel]


def the_log(read: list[Envelope[Any]], outputs: list[tuple[str, Envelope[Any]]]) -> list[Any]:
    """The log as a replay reads it: inputs by time (the cancel was produced first), then
    memory's outputs, topics interleaved."""
    by_time = sorted(read, key=lambda e: (e.type != "GoalSubmitted", e.type != "CancelRun"))
    return [(TOPIC[e.type], e) for e in by_time] + outputs


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(1, 5)))
def test_replay_folds_in_memory_s_order_whatever_the_log_s(order: list[int]) -> None:
    events = a_step_then_a_cancel()
    read = [events[0], *(events[i] for i in order)]  # memory read them in this order
    live, outputs = memory(read)
    replayed = fold(in_folding_order(the_log(read, outputs)), ENV).state
    assert replayed is not None
    assert replayed.model_dump_json() == live.model_dump_json()


def test_a_result_after_the_cancel_is_ignored_by_the_replay_as_by_memory() -> None:
    goal, decided, first, second, cancel = a_step_then_a_cancel()
    later = second.model_copy(update={"occurred_at": second.occurred_at - timedelta(seconds=5)})
    live, outputs = memory([goal, decided, first, cancel, later])
    assert live.status.value == "cancelled"
    assert [m.tool_call_id for m in live.received] == ["c0"]
    log = [(TOPIC[e.type], e) for e in (goal, decided, later, first, cancel)] + outputs
    replayed = fold(in_folding_order(log), ENV).state
    assert replayed is not None
    assert replayed.model_dump_json() == live.model_dump_json()
    assert [t for t, _ in outputs] == [CONTEXTS.name, RESULTS.name]


def rejected(goal: Envelope[Any], why: str) -> tuple[str, Envelope[Any]]:
    """Memory's answer to a goal it did not take, as the log holds it."""
    refusal = GoalRejected(reason=RejectionReason.NOT_AUTHORIZED, message=why)
    return RESULTS.name, goal.follow(refusal, producer="memory", seq=0)


def test_a_goal_memory_rejected_is_not_folded_by_a_replay_without_the_keys() -> None:
    """The replay's environment has no keyring (ENV): it cannot tell a forged goal by its
    signature, but memory's rejection in the log says it was never taken."""
    forged = Envelope.of(GoalSubmitted(goal="g", agent="a"), run_id="r", producer="kcat")
    log = [(GOALS.name, forged), rejected(forged, "goal refused: it is not signed")]
    assert in_folding_order(log) == []
    with pytest.raises(NoGoalError):
        fold(in_folding_order(log), ENV)


def test_a_second_goal_of_a_run_memory_rejected_leaves_the_first_one_s_run() -> None:
    goal, decided, first, second, _ = a_step_then_a_cancel()
    live, outputs = memory([goal, decided, first, second])
    again = Envelope.of(GoalSubmitted(goal="another", agent="a"), run_id="r", producer="sdk")
    log = [(GOALS.name, goal), (GOALS.name, again), rejected(again, "run r exists")]
    log += [(TOPIC[e.type], e) for e in (decided, first, second)] + outputs
    replayed = fold(in_folding_order(log), ENV).state
    assert replayed is not None
    assert replayed.model_dump_json() == live.model_dump_json()
