"""Context window management and memory's own tools, in the pure reducer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from loopline_artifacts import reference
from loopline_events import (
    ContextAssembled,
    Envelope,
    GoalSubmitted,
    Message,
    ModelDecided,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
    ToolSpec,
    Window,
    request_messages,
)
from loopline_memory.domain import Environment, Phase, RecallRequest, StoreMemory, apply, window
from loopline_memory.domain.served import START_RECALL_CALL, recalled
from loopline_runtime import AgentProfile

HEAD = (Message(role="system", content="Be brief."), Message(role="user", content="the goal"))
TEXT = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "


def history(rounds: list[int]) -> list[Message]:
    """A conversation of tool rounds, the i-th result `sizes[i]` characters long."""
    messages = list(HEAD)
    for i, size in enumerate(rounds):
        call = ToolCall(call_id=f"c{i}", tool="calculator", arguments={"n": i})
        messages.append(Message(role="assistant", tool_calls=(call,)))
        text = (TEXT * (size // len(TEXT) + 1))[:size]
        messages.append(Message(role="tool", tool_call_id=f"c{i}", content=text))
    return messages


def held(messages: list[Message]) -> window.History:
    tokens = [window.message_tokens(m) for m in messages]
    return window.History(messages, tokens, sum(tokens), len(HEAD))


def shown_tokens(messages: list[Message], planned: Window | None) -> int:
    return sum(window.message_tokens(m) for m in request_messages(messages, planned, {}))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000), max_size=30), st.integers(100, 2000))
def test_a_window_fits_its_budget_and_keeps_head_and_latest_round(
    sizes: list[int], budget: int
) -> None:
    messages = history(sizes)
    planned = window.plan(held(messages), budget, 0).window
    out = request_messages(messages, planned, {})
    assert tuple(out[:2]) == HEAD
    assert shown_tokens(messages, planned) <= budget or planned is None
    if sizes:
        # The latest call is there, and so is its result (cut, maybe, but there).
        assert out[-2] == messages[-2]
        assert out[-1].tool_call_id == messages[-1].tool_call_id
    calls = {c.call_id for m in out for c in m.tool_calls}
    answered = {m.tool_call_id for m in out if m.role == "tool"}
    assert calls == answered  # never a call without its result, nor a result without its call


def test_a_history_under_budget_is_shown_whole_and_one_over_gets_a_marker() -> None:
    messages = history([10] * 5)
    assert window.plan(held(messages), 10_000, 0).window is None
    total = held(messages).total
    planned = window.plan(held(messages), total - 1, 0)
    assert planned.window is not None
    assert planned.window.note is not None
    assert "were left out" in planned.window.note.content
    assert planned.left_out == (2, planned.window.start)


def test_a_stored_output_is_shown_as_far_as_the_budget_allows_with_how_to_read_the_rest() -> None:
    text = TEXT * 4000  # about 228 k characters
    stored = reference(text)
    call = ToolCall(call_id="c0", tool="http_get", arguments={"url": "https://example.com"})
    messages = [
        *HEAD,
        Message(role="assistant", tool_calls=(call,)),
        Message(role="tool", tool_call_id="c0", artifact=stored),
    ]
    planned = window.plan(held(messages), 2_000, 0).window
    assert planned is not None
    (cut,) = planned.cuts
    assert cut.index == 3
    out = request_messages(messages, planned, {stored.ref: text})
    assert out[-1].content.startswith(text[: cut.chars])
    assert f"the whole output is artifact {stored.ref}" in out[-1].content
    assert "read_artifact(ref, offset, length)" in out[-1].content
    assert sum(window.message_tokens(m) for m in out) <= 2_000
    # A larger window shows more of it; one that holds it all, all of it.
    wider = window.plan(held(messages), 20_000, 0).window
    assert wider is not None
    assert wider.cuts[0].chars > cut.chars
    assert window.plan(held(messages), 100_000, 0).window is None


def test_a_long_tool_output_is_referenced_not_copied_into_the_state() -> None:
    # Events made by hand, not chained by cause: test_orphans.py tests those checks.
    env = Environment(
        trust_log=True,
        profiles={"a": AgentProfile(name="a", system_prompt="s", tools=("http_get",))},
        tools={"http_get": ToolSpec(name="http_get")},
    )
    goal = Envelope.of(GoalSubmitted(goal="g", agent="a"), run_id="r", producer="t")
    state = apply(None, goal, env).state
    call = ToolCall(call_id="c0", tool="http_get")
    decided = Envelope.of(
        ModelDecided(model="demo", tool_calls=(call,)), run_id="r", producer="t", seq=1
    )
    state = apply(state, decided, env).state
    big = reference("y" * 300_000)
    done = Envelope.of(
        ToolCallSucceeded(call_id="c0", tool="http_get", output="", artifact=big),
        run_id="r",
        producer="t",
        seq=1,
    )
    step = apply(state, done, env)
    assert step.state is not None
    assert step.state.messages[-1].artifact == big
    assert len(step.state.model_dump_json()) < 20_000
    (emission,) = step.emissions
    context = emission.payload
    assert isinstance(context, ContextAssembled)
    assert [m.role for m in context.appended] == ["assistant", "tool"]
    assert len(context.model_dump_json()) < 4_000


def memory_env(**profile: Any) -> Environment:
    fields = {"name": "m", "system_prompt": "s", "tools": ("remember", "recall"), **profile}
    return Environment(trust_log=True, profiles={"m": AgentProfile(**fields)})


def test_a_run_starts_by_recalling_memories_then_puts_them_before_the_goal() -> None:
    env = memory_env(recall_limit=3)
    goal = Envelope.of(
        GoalSubmitted(goal="where is my locker", agent="m"), run_id="r", producer="t"
    )
    step = apply(None, goal, env)
    assert step.emissions == ()
    assert step.requests == (
        RecallRequest(call_id=START_RECALL_CALL, query="where is my locker", limit=3),
    )
    assert step.state is not None
    assert step.state.phase is Phase.RECALL
    answer = goal.follow(recalled(START_RECALL_CALL, ["my locker is 12"]), producer="memory")
    step = apply(step.state, answer, env)
    context = step.emissions[0].payload
    assert isinstance(context, ContextAssembled)
    assert [m.role for m in context.appended] == ["system", "system", "user"]
    assert "my locker is 12" in context.appended[1].content


def test_remember_is_answered_by_memory_and_the_fact_kept() -> None:
    env = memory_env()
    goal = Envelope.of(GoalSubmitted(goal="g", agent="m"), run_id="r", producer="t")
    state = apply(None, goal, env).state
    calls = (
        ToolCall(call_id="a", tool="remember", arguments={"fact": "the build takes 4 minutes"}),
        ToolCall(call_id="b", tool="recall", arguments={"query": "build"}),
        ToolCall(call_id="c", tool="remember", arguments={}),
    )
    decided = goal.follow(ModelDecided(model="demo", tool_calls=calls), producer="planner", seq=1)
    step = apply(state, decided, env)
    answers = [e.payload for e in step.emissions]
    assert isinstance(answers[0], ToolCallSucceeded)
    assert answers[0].call_id == "a"
    assert isinstance(answers[1], ToolCallFailed)
    assert answers[1].error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert step.requests == (
        StoreMemory(kind="fact", content="the build takes 4 minutes"),
        RecallRequest(call_id="b", query="build", limit=5),
    )


def test_memory_refuses_its_tools_to_a_profile_without_them() -> None:
    env = memory_env(tools=())
    goal = Envelope.of(GoalSubmitted(goal="g", agent="m"), run_id="r", producer="t")
    state = apply(None, goal, env).state
    call = ToolCall(call_id="a", tool="recall", arguments={"query": "x"})
    step = apply(
        state, goal.follow(ModelDecided(model="demo", tool_calls=(call,)), producer="p", seq=1), env
    )
    (refusal,) = [e.payload for e in step.emissions]
    assert isinstance(refusal, ToolCallFailed)
    assert refusal.error.kind is ToolErrorKind.FORBIDDEN
    assert step.requests == ()


def test_a_finished_run_leaves_an_episode() -> None:
    env = memory_env()
    goal = Envelope.of(GoalSubmitted(goal="say hi", agent="m"), run_id="r", producer="t")
    state = apply(None, goal, env).state
    step = apply(
        state, goal.follow(ModelDecided(model="demo", final_answer="hi"), producer="p", seq=1), env
    )
    (episode,) = step.requests
    assert isinstance(episode, StoreMemory)
    assert episode.kind == "episode"
    assert episode.content == "Goal: say hi\nOutcome: completed\nSummary: hi"
