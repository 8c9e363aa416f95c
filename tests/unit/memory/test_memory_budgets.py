"""The reducer's budgets (tokens, cost, steps, time) and its no-progress detection: pure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopline_events import (
    Budget,
    ContextAssembled,
    Envelope,
    FailureReason,
    GoalSubmitted,
    ModelDecided,
    Payload,
    RunCompleted,
    RunFailed,
    TokenUsage,
    ToolCall,
    ToolCallSucceeded,
    ToolSpec,
)
from loopline_memory.domain import Environment, RunState, RunStatus, Step, apply
from loopline_memory.domain.budgets import decision_price
from loopline_memory.domain.progress import stuck
from loopline_runtime import AgentProfile, price_of


def env(**profile: Any) -> Environment:
    fields: dict[str, Any] = {
        "name": "a",
        "system_prompt": "Be brief.",
        "model": "demo",
        "tools": ("calculator",),
        "max_steps": 50,
        "deadline_s": 600,
    }
    # Events made by hand, not chained by cause: test_orphans.py tests those checks.
    return Environment(
        trust_log=True,
        profiles={"a": AgentProfile(**{**fields, **profile})},
        tools={"calculator": ToolSpec(name="calculator")},
    )


class Run:
    """A run driven event by event, time moving one second per event."""

    def __init__(self, environment: Environment, **budget: Any):
        self.env = environment
        self.last: Envelope[Any] = Envelope.of(
            GoalSubmitted(goal="g", agent="a", budget=Budget(**budget)), run_id="r", producer="t"
        )
        self.step = apply(None, self.last, self.env)

    @property
    def state(self) -> RunState:
        assert self.step.state is not None
        return self.step.state

    def feed(self, payload: Payload) -> Step:
        event = Envelope.of(payload, run_id="r", producer="t", seq=self.state.step)
        event = event.model_copy(
            update={"occurred_at": self.last.occurred_at + timedelta(seconds=1)}
        )
        self.last, self.step = event, apply(self.state, event, self.env)
        return self.step

    def round(self, expression: str, output: str, tokens: int = 0) -> Step:
        call = ToolCall(
            call_id=f"c{self.state.step}", tool="calculator", arguments={"x": expression}
        )
        usage = TokenUsage(prompt_tokens=tokens, completion_tokens=0)
        self.feed(ModelDecided(model="demo", tool_calls=(call,), usage=usage))
        return self.feed(ToolCallSucceeded(call_id=call.call_id, tool="calculator", output=output))


def context_of(step: Step) -> ContextAssembled:
    (emission,) = step.emissions
    assert isinstance(emission.payload, ContextAssembled)
    return emission.payload


def test_a_token_budget_warns_the_model_once_then_ends_the_run_with_what_was_spent() -> None:
    run = Run(env(), max_tokens=1000)
    notes = []
    outcome = None
    for i in range(20):
        step = run.round(str(i), str(i), tokens=300)
        payload = step.emissions[0].payload
        if isinstance(payload, RunFailed):
            outcome = payload
            break
        notes += [m for m in context_of(step).appended if "Budget" in m.content]
    assert outcome is not None
    assert outcome.reason is FailureReason.BUDGET_EXHAUSTED
    assert outcome.usage.total_tokens == 1200  # four steps of 300: the last was the wrap-up
    assert "1200 tokens" in outcome.message
    assert len(notes) == 1  # asked once to wrap up, and the note stays in the history
    assert "last step" in notes[0].content
    assert run.state.status is RunStatus.FAILED


def test_a_final_answer_in_the_wrap_up_step_completes_the_run() -> None:
    run = Run(env(), max_tokens=1000)
    run.round("1", "1", tokens=600)  # 600 spent, the next step of ~600 would reach 1000
    assert run.state.wrapping_up
    step = run.feed(
        ModelDecided(model="demo", final_answer="done", usage=TokenUsage(prompt_tokens=500))
    )
    assert isinstance(step.emissions[0].payload, RunCompleted)
    assert step.emissions[0].payload.usage.total_tokens == 1100


def test_a_cost_budget_prices_tokens_from_the_price_table() -> None:
    run = Run(env(), max_cost_usd=0.001)  # the demo model: $1 per million tokens read
    failed = None
    for i in range(10):
        step = run.round(str(i), str(i), tokens=400)
        if isinstance(step.emissions[0].payload, RunFailed):
            failed = step.emissions[0].payload
            break
    assert failed is not None
    assert failed.reason is FailureReason.BUDGET_EXHAUSTED
    assert failed.cost_usd >= 0.001
    assert failed.usage.prompt_tokens == 1200


def test_budgets_default_from_the_profile_and_the_goal_overrides_them() -> None:
    assert Run(env(max_tokens=500, max_cost_usd=2.0)).state.max_tokens == 500
    run = Run(env(max_tokens=500, max_cost_usd=2.0), max_tokens=90, max_cost_usd=0)
    assert (run.state.max_tokens, run.state.max_cost_usd) == (90, 0)


def test_the_last_step_by_time_gets_the_wrap_up_note() -> None:
    run = Run(env(deadline_s=10))
    run.last = run.last.model_copy(
        update={"occurred_at": run.last.occurred_at + timedelta(seconds=7)}
    )
    step = run.round("1", "1")
    assert "time is almost up" in context_of(step).appended[-1].content


def test_repeating_the_same_call_nudges_then_ends_with_no_progress() -> None:
    run = Run(env(no_progress_repeats=3))
    assert isinstance(run.round("1+1", "2").emissions[0].payload, ContextAssembled)
    nudged = run.round("1+1", "2").emissions
    assert isinstance(nudged[0].payload, ContextAssembled)
    step = run.round("1+1", "2")
    assert "No progress" in context_of(step).appended[-1].content
    step = run.round("1+1", "2")
    failed = step.emissions[0].payload
    assert isinstance(failed, RunFailed)
    assert failed.reason is FailureReason.NO_PROGRESS
    assert failed.steps == 4


def test_a_profile_can_fail_at_once_on_no_progress() -> None:
    run = Run(env(no_progress_repeats=2, on_no_progress="fail"))
    run.round("1+1", "2")
    failed = run.round("1+1", "2").emissions[0].payload
    assert isinstance(failed, RunFailed)
    assert failed.reason is FailureReason.NO_PROGRESS


def test_oscillating_between_two_rounds_is_no_progress() -> None:
    run = Run(env(no_progress_repeats=3, on_no_progress="fail"))
    outcomes = [run.round(x, x).emissions[0].payload for x in ("a", "b", "a", "b")]
    assert all(isinstance(p, ContextAssembled) for p in outcomes[:3])
    assert isinstance(outcomes[3], RunFailed)
    assert "two rounds" in outcomes[3].message


def test_the_same_call_with_new_results_is_progress() -> None:
    run = Run(env(no_progress_repeats=2, on_no_progress="fail"))
    for i in range(10):
        assert isinstance(run.round("count", str(i)).emissions[0].payload, ContextAssembled)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=12), st.integers(min_value=2, max_value=5))
def test_stuck_means_n_repeats_or_a_two_round_swing(rounds: list[str], n: int) -> None:
    why = stuck(rounds, n)
    repeated = len(rounds) >= n and len(set(rounds[-n:])) == 1
    w = max(4, 2 * (n - 1))
    tail = rounds[-w:]
    swing = len(rounds) >= w and tail[0] != tail[1] and tail == [tail[0], tail[1]] * (w // 2)
    assert (why is not None) == (repeated or swing)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=15), st.integers(1, 3000)
)
def test_a_run_never_spends_more_than_one_step_past_its_token_budget(
    steps: list[int], budget: int
) -> None:
    run = Run(env(), max_tokens=budget)
    for i, tokens in enumerate(steps):
        before = run.state.usage.total_tokens
        step = run.round(str(i), str(i), tokens=tokens)
        if run.state.finished:
            assert isinstance(step.emissions[0].payload, RunFailed)
            assert before < budget <= run.state.usage.total_tokens
            return
        assert run.state.usage.total_tokens < budget


def test_a_goal_lowers_its_profile_s_limits() -> None:
    run = Run(env(max_tokens=1000, max_cost_usd=1.0), max_steps=3, deadline_s=60, max_tokens=10)
    s = run.state
    assert (s.max_steps, s.max_tokens, s.max_cost_usd, s.capped) == (3, 10, 1.0, ())
    assert s.deadline_at == s.started_at + timedelta(seconds=60)


def test_a_goal_asking_for_more_than_its_profile_is_capped_and_the_cap_recorded() -> None:
    run = Run(
        env(max_tokens=1000, max_cost_usd=1.0),
        max_steps=10_000,
        deadline_s=86_400,
        max_tokens=10**9,
        max_cost_usd=500.0,
    )
    s = run.state
    assert (s.max_steps, s.max_tokens, s.max_cost_usd) == (50, 1000, 1.0)
    assert s.deadline_at == s.started_at + timedelta(seconds=600)
    assert s.capped == (
        "max_steps: asked 10000, capped to the profile's 50",
        "deadline_s: asked 86400, capped to the profile's 600",
        "max_tokens: asked 1000000000, capped to the profile's 1000",
        "max_cost_usd: asked 500, capped to the profile's 1",
    )


def test_a_goal_may_set_a_limit_its_profile_leaves_open() -> None:
    s = Run(env(), max_tokens=5000, max_cost_usd=2.5).state
    assert (s.max_tokens, s.max_cost_usd, s.capped) == (5000, 2.5, ())


def test_cached_tokens_are_priced_at_the_cached_price_and_writes_at_theirs() -> None:
    price = price_of("anthropic:claude-sonnet-4-5")  # 3 in, 0.30 cached, 3.75 written, 15 out
    usage = TokenUsage(
        prompt_tokens=1_000_000,
        completion_tokens=0,
        cached_tokens=600_000,
        cache_write_tokens=100_000,
    )
    assert price.of(usage) == pytest.approx(0.3 * 3.0 + 0.6 * 0.3 + 0.1 * 3.75)
    assert price.of(TokenUsage(prompt_tokens=1_000_000)) == 3.0
    openai = price_of("openai:gpt-4o-mini")  # no write price: writes at the input price
    assert openai.of(TokenUsage(prompt_tokens=1_000_000, cache_write_tokens=1_000_000)) == 0.15


def test_a_decision_is_priced_by_the_model_that_made_it_unless_the_profile_names_a_price() -> None:
    claude = "anthropic:claude-sonnet-4-5"
    state = Run(env(model=claude)).state  # no `price` in the profile: the model's entry
    assert decision_price(state, claude) == price_of(claude)
    assert decision_price(state, "openai:gpt-4o-mini") == price_of("openai:gpt-4o-mini")
    named = Run(env(model=claude, price="demo")).state
    assert decision_price(named, "openai:gpt-4o-mini") == price_of("demo")
