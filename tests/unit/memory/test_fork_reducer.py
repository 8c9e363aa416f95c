"""Forks in the reducer: copied steps, a live next step, lineage on both runs."""

from __future__ import annotations

from loopline_events import (
    ContextAssembled,
    Envelope,
    ForkRecorded,
    Message,
    ModelDecided,
    RunForked,
    TokenUsage,
)
from loopline_memory.domain import Environment, RunStatus, apply
from loopline_runtime import AgentProfile

PROFILES = {
    "default": AgentProfile(name="default", system_prompt="Be brief.", tools=("calculator",)),
    "terse": AgentProfile(name="terse", system_prompt="One word.", model="openai:x"),
}
# Events made by hand, not chained by cause: test_orphans.py tests those checks.
ENV = Environment(trust_log=True, profiles=PROFILES)
HISTORY = (
    Message(role="system", content="Be brief."),
    Message(role="user", content="2 + 3, then times 4"),
    Message(role="assistant", content="", tool_calls=()),
    Message(role="tool", content="5", tool_call_id="call_1_0"),
)


def forked(**changes: object) -> Envelope[RunForked]:
    fork = RunForked(
        parent_run_id="parent",
        from_step=2,
        goal="2 + 3, then times 4",
        messages=HISTORY,
        usage=TokenUsage(prompt_tokens=40, completion_tokens=8),
    ).model_copy(update=changes)
    return Envelope.of(fork, run_id="child", producer="test")


def test_a_fork_starts_after_the_copied_steps_with_its_own_prompt_and_model() -> None:
    step = apply(None, forked(agent="terse", system_prompt="Answer in one word."), ENV)
    state = step.state
    assert state is not None
    assert (state.step, state.parent_run_id, state.forked_at_step) == (3, "parent", 2)
    assert state.model == "openai:x"
    assert state.usage == TokenUsage(prompt_tokens=40, completion_tokens=8)
    (emission,) = step.emissions
    context = emission.payload
    assert isinstance(context, ContextAssembled)
    assert (context.base, context.window) == (0, None)  # all of it, new to the planner
    assert context.appended[0].content == "Answer in one word."
    assert context.appended[1:] == HISTORY[1:]


def test_a_model_override_wins_over_the_profile() -> None:
    state = apply(None, forked(model="demo"), ENV).state
    assert state is not None
    assert state.model == "demo"


def test_lineage_is_recorded_on_the_parent_even_after_it_ended() -> None:
    goal = forked()  # any started run will do as a parent
    parent = apply(None, goal, ENV).state
    assert parent is not None
    done = Envelope.of(
        ModelDecided(model="demo", final_answer="20"), run_id="child", seq=3, producer="test"
    )
    parent = apply(parent, done, ENV).state
    assert parent is not None
    assert parent.status is RunStatus.COMPLETED
    lineage = Envelope.of(
        ForkRecorded(child_run_id="grandchild", from_step=1), run_id="child", producer="test"
    )
    step = apply(parent, lineage, ENV)
    assert step.changed
    assert step.state is not None
    assert step.state.forks == ("grandchild",)
    assert step.emissions == ()
