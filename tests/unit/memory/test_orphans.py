"""A run folds only what answers what it asked: the decision of the context memory issued, the
results of that decision's calls. Anything else is an orphan (forged, or misrouted): refused,
never folded, whatever its step and call id look like."""

from __future__ import annotations

from typing import Any

from loopline_events import (
    Envelope,
    GoalSubmitted,
    ModelDecided,
    ToolCall,
    ToolCallSucceeded,
    ToolSpec,
)
from loopline_memory.domain import Environment, RunState, Step, apply
from loopline_runtime import AgentProfile

ENV = Environment(
    profiles={"a": AgentProfile(name="a", system_prompt="p", tools=("calculator",))},
    tools={"calculator": ToolSpec(name="calculator")},
)
CALLS = (ToolCall(call_id="call_1_0", tool="calculator", arguments={"expression": "6 * 7"}),)


class Live:
    """A run as the services drive it: each event follows the one it answers."""

    def __init__(self) -> None:
        self.goal = Envelope.of(GoalSubmitted(goal="6 * 7?", agent="a"), run_id="r", producer="sdk")
        first = apply(None, self.goal, ENV)
        assert first.state is not None
        self.state: RunState = first.state
        self.context = self.goal.follow(
            first.emissions[0].payload, producer="memory", seq=1, index=0
        )

    def decide(self, **payload: Any) -> Envelope[Any]:
        return self.context.follow(ModelDecided(model="demo", **payload), producer="planner")

    def fold(self, event: Envelope[Any]) -> Step:
        step = apply(self.state, event, ENV)
        if step.changed and step.state is not None:
            self.state = step.state
        return step


def test_the_decision_of_the_issued_context_and_its_results_are_folded() -> None:
    run = Live()
    decided = run.decide(tool_calls=CALLS)
    assert run.fold(decided).changed
    result = ToolCallSucceeded(call_id="call_1_0", tool="calculator", output="42")
    step = run.fold(decided.follow(result, producer="tool-executor"))
    assert step.changed
    assert run.state.step == 2


def test_a_decision_naming_another_cause_is_an_orphan() -> None:
    run = Live()
    forged = Envelope.of(
        ModelDecided(model="demo", final_answer="1337"), run_id="r", producer="planner", seq=1
    )
    step = run.fold(forged)
    assert step.orphan
    assert "not the context memory issued" in step.note
    assert run.state.status.value == "running"  # nothing folded


def test_a_result_guessing_the_call_id_is_an_orphan_before_and_after_the_decision() -> None:
    run = Live()
    lie = ToolCallSucceeded(call_id="call_1_0", tool="calculator", output="1337")
    forged = Envelope.of(lie, run_id="r", producer="tool-executor", seq=1)
    before = run.fold(forged)  # read before the decision, as results may be
    assert before.orphan
    decided = run.decide(tool_calls=CALLS)
    run.fold(decided)
    after = run.fold(forged)
    assert after.orphan
    assert run.state.received == ()


def test_a_result_of_a_call_the_decision_did_not_make_is_an_orphan() -> None:
    run = Live()
    decided = run.decide(tool_calls=CALLS)
    run.fold(decided)
    extra = ToolCallSucceeded(call_id="call_1_9", tool="calculator", output="1")
    step = run.fold(decided.follow(extra, producer="tool-executor", index=5))
    assert step.orphan
    assert "did not make" in step.note


def test_a_stale_decision_is_ignored_not_an_orphan() -> None:
    run = Live()
    old = Envelope.of(
        ModelDecided(model="demo", final_answer="x"), run_id="r", producer="planner", seq=0
    )
    step = run.fold(old)
    assert not step.orphan
    assert not step.changed
