"""Sub-tasks in memory's reducer: a `delegate` call starts a child run with what its parent has
left, the child's end comes back as the call's result with what it spent, the parent's end
cancels the children still running, and nothing but memory may start or answer a sub-task."""

from __future__ import annotations

import os
from typing import Any

from loopline_events import (
    ANY_TENANT,
    CONTROL,
    GOALS,
    OBSERVATIONS,
    CancelRun,
    DelegationStarted,
    Envelope,
    GoalRejected,
    GoalSubmitted,
    Keyring,
    ModelDecided,
    SigningKey,
    TokenUsage,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)
from loopline_memory.domain import Environment, RunState, Step, apply
from loopline_memory.domain.delegation import child_run_id
from loopline_memory.domain.state import Emission
from loopline_runtime import AgentProfile

PROFILES = {
    "lead": AgentProfile(
        name="lead",
        system_prompt="Lead.",
        tools=("delegate",),
        delegates=("helper",),
        max_steps=8,
        max_tokens=10_000,
        max_delegation_depth=1,
    ),
    "helper": AgentProfile(
        name="helper",
        description="Answers sub-questions.",
        system_prompt="Help.",
        tools=("delegate",),
        delegates=("helper",),
        max_steps=20,
    ),
}
ENV = Environment(profiles=PROFILES)
SERVICES = SigningKey("services", os.urandom(32))
CLIENT = SigningKey("client-acme", os.urandom(32))
SIGNED = Environment(
    profiles=PROFILES, keyring=Keyring.of([(SERVICES, [ANY_TENANT]), (CLIENT, ["acme"])])
)


class Run:
    """A run as the services drive it: each event follows the one it answers."""

    def __init__(self, goal: Envelope[Any], env: Environment = ENV) -> None:
        self.env = env
        first = apply(None, goal, env)
        assert first.state is not None, first.note
        self.state: RunState = first.state
        self.context = goal.follow(first.emissions[0].payload, producer="memory", seq=1)

    def decide(self, **payload: Any) -> tuple[Envelope[Any], Step]:
        decided = self.context.follow(
            ModelDecided(model="demo", usage=TokenUsage(prompt_tokens=100), **payload),
            producer="planner",
        )
        return decided, self.fold(decided)

    def fold(self, event: Envelope[Any]) -> Step:
        step = apply(self.state, event, self.env)
        if step.changed and step.state is not None:
            self.state = step.state
            contexts = [e for e in step.emissions if e.topic == "agent.contexts"]
            if contexts:
                self.context = event.follow(
                    contexts[0].payload, producer="memory", seq=self.state.step
                )
        return step


def lead_run() -> Run:
    goal = GoalSubmitted(goal="Find out, then tell me.", agent="lead")
    return Run(Envelope.of(goal, run_id="lead-1", producer="sdk", tenant="acme"))


def delegate(agent: str = "helper", goal: str = "What is 6 * 7?") -> ToolCall:
    return ToolCall(call_id="call_1_0", tool="delegate", arguments={"agent": agent, "goal": goal})


def published(emission: Emission, cause: Envelope[Any]) -> Envelope[Any]:
    """The event memory's handler makes of an emission for another run."""
    out = cause.follow(emission.payload, producer="memory", seq=emission.seq or 0)
    return out.model_copy(update={"run_id": emission.run_id or cause.run_id})


def test_a_delegate_call_starts_a_child_run_with_what_the_parent_has_left() -> None:
    lead = lead_run()
    _, step = lead.decide(tool_calls=(delegate(),))
    goals = [e for e in step.emissions if e.topic == GOALS.name]
    waits = [e.payload for e in step.emissions if isinstance(e.payload, DelegationStarted)]
    assert len(goals) == 1
    assert len(waits) == 1
    child = goals[0]
    assert child.run_id == child_run_id("lead-1", "call_1_0") == waits[0].child_run_id
    goal = child.payload
    assert isinstance(goal, GoalSubmitted)
    assert (goal.agent, goal.goal) == ("helper", "What is 6 * 7?")
    assert goal.parent is not None
    assert (goal.parent.parent_run_id, goal.parent.parent_step, goal.parent.depth) == (
        "lead-1",
        1,
        1,
    )
    # At most what the lead has left: 7 of its 8 steps, 9,900 of its 10,000 tokens.
    assert (goal.budget.max_steps, goal.budget.max_tokens) == (7, 9_900)
    assert goal.budget.deadline_s is not None
    assert goal.budget.deadline_s <= 300
    assert [c.run_id for c in lead.state.children] == [child.run_id]
    assert lead.state.pending_calls == ("call_1_0",)  # the step waits for the child


def test_the_child_s_end_is_the_call_s_result_and_its_spend_counts_against_the_parent() -> None:
    lead = lead_run()
    decided, step = lead.decide(tool_calls=(delegate(),))
    (goal,) = [e for e in step.emissions if e.topic == GOALS.name]
    helper = Run(published(goal, decided))
    assert helper.state.delegated_by is not None
    _, ended = helper.decide(final_answer="42")
    owed = [e for e in ended.emissions if e.topic == OBSERVATIONS.name]
    assert [(e.run_id, e.seq) for e in owed] == [("lead-1", 1)]
    result = owed[0].payload
    assert isinstance(result, ToolCallSucceeded)
    assert (result.call_id, result.output) == ("call_1_0", "42")
    assert result.spent is not None
    assert result.spent.usage.prompt_tokens == 100

    back = lead.fold(published(owed[0], helper.context))
    assert back.changed, back.note
    assert lead.state.step == 2  # the next step, with the child's answer in its history
    assert lead.state.messages[-1].content == "42"
    assert lead.state.delegated.usage.prompt_tokens == 100
    assert lead.state.children[0].ended


def test_a_failed_child_is_a_tool_error_the_parent_s_model_reads() -> None:
    lead = lead_run()
    decided, step = lead.decide(tool_calls=(delegate(),))
    (goal,) = [e for e in step.emissions if e.topic == GOALS.name]
    helper = Run(published(goal, decided))
    cancel = Envelope.of(CancelRun(reason="enough"), run_id=helper.state.run_id, producer="cli")
    ended = helper.fold(cancel)
    (owed,) = [e for e in ended.emissions if e.topic == OBSERVATIONS.name]
    assert isinstance(owed.payload, ToolCallFailed)
    assert owed.payload.error.kind is ToolErrorKind.CHILD_FAILED
    assert "was cancelled" in owed.payload.error.message
    lead.fold(published(owed, cancel))
    assert "child_failed" in lead.state.messages[-1].content


def test_the_parent_s_end_cancels_its_children_still_running() -> None:
    lead = lead_run()
    lead.decide(tool_calls=(delegate(),))
    stop = Envelope.of(CancelRun(reason="stop"), run_id="lead-1", producer="cli", seq=1)
    ended = lead.fold(stop)
    cancels = [e for e in ended.emissions if e.topic == CONTROL.name]
    assert [(e.run_id, type(e.payload)) for e in cancels] == [
        (child_run_id("lead-1", "call_1_0"), CancelRun)
    ]


def test_delegating_to_an_agent_not_allowed_or_past_the_depth_limit_is_refused() -> None:
    lead = lead_run()
    _, step = lead.decide(tool_calls=(delegate(agent="lead"),))
    (refused,) = [e.payload for e in step.emissions]
    assert isinstance(refused, ToolCallFailed)
    assert refused.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert "one of helper" in refused.error.message

    lead = lead_run()
    decided, step = lead.decide(tool_calls=(delegate(),))
    (goal,) = [e for e in step.emissions if e.topic == GOALS.name]
    helper = Run(published(goal, decided))  # depth 1; its own profile allows depth 2
    _, deeper = helper.decide(tool_calls=(delegate(),))
    assert [e.topic for e in deeper.emissions].count(GOALS.name) == 1
    grandchild = next(e for e in deeper.emissions if e.topic == GOALS.name)
    assert isinstance(grandchild.payload, GoalSubmitted)
    assert grandchild.payload.parent is not None
    assert grandchild.payload.parent.depth == 2
    deepest = Run(published(grandchild, decided))
    _, too_deep = deepest.decide(tool_calls=(delegate(),))
    (refused,) = [e.payload for e in too_deep.emissions]
    assert isinstance(refused, ToolCallFailed)
    assert "delegates no deeper than 2" in refused.error.message


def test_only_memory_starts_a_sub_task_and_only_memory_answers_one() -> None:
    lead = lead_run()
    decided, step = lead.decide(tool_calls=(delegate(),))
    (goal,) = [e for e in step.emissions if e.topic == GOALS.name]
    forged = CLIENT.sign(
        Envelope.of(goal.payload, run_id="sub-forged", producer="sdk", tenant="acme")
    )
    refused = apply(None, forged, SIGNED)
    assert refused.refusal is not None
    assert isinstance(refused.refusal.payload, GoalRejected)
    assert "only memory starts one" in refused.refusal.payload.message
    by_memory = SERVICES.sign(published(goal, decided))
    assert apply(None, by_memory, SIGNED).state is not None

    lie = ToolCallSucceeded(call_id="call_1_0", tool="delegate", output="1337")
    forged_result = decided.follow(lie, producer="tool-executor")
    step = lead.fold(forged_result)
    assert step.orphan
    assert lead.state.pending_calls == ("call_1_0",)
