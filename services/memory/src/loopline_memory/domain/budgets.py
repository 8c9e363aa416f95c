"""Budgets of a run: what its tokens cost, when a limit is spent, when the next step is the last.

Pure: time is the run's latest event time, never a clock, so replays decide the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopline_events import Budget, TokenUsage
from loopline_runtime import AgentProfile, Price, price_of

if TYPE_CHECKING:
    from loopline_memory.domain.state import RunState


WRAP_UP_AT = 0.9
"""Share of the wall-clock budget after which the next step is the last."""


@dataclass(frozen=True)
class Limits:
    """A run's limits: its goal's budget within its profile's."""

    max_steps: int
    deadline_s: float | None
    max_tokens: int | None
    max_cost_usd: float | None
    capped: tuple[str, ...] = ()
    """What the goal asked beyond its profile, and what it got instead (for people)."""


def limits(asked: Budget, profile: AgentProfile | None) -> Limits:
    """The goal's budget where it lowers its profile's limits; the profile's where it asks for
    more (a goal never raises what its agent may spend), each such cap noted."""
    if profile is None:  # the run fails at once as an invalid goal: nothing to spend
        return Limits(asked.max_steps or 1, asked.deadline_s, asked.max_tokens, asked.max_cost_usd)
    capped: list[str] = []

    def within(name: str, wanted: float | None, allowed: float | None) -> float | None:
        if wanted is None:
            return allowed
        if allowed is not None and wanted > allowed:
            capped.append(f"{name}: asked {_num(wanted)}, capped to the profile's {_num(allowed)}")
            return allowed
        return wanted

    steps = within("max_steps", asked.max_steps, profile.max_steps)
    deadline = within("deadline_s", asked.deadline_s, profile.deadline_s)
    tokens = within("max_tokens", asked.max_tokens, profile.max_tokens)
    cost = within("max_cost_usd", asked.max_cost_usd, profile.max_cost_usd)
    return Limits(
        max_steps=int(steps or profile.max_steps),
        deadline_s=deadline,
        max_tokens=int(tokens) if tokens is not None else None,
        max_cost_usd=cost,
        capped=tuple(capped),
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def decision_price(state: RunState, model: str) -> Price:
    """What a decision of `model` costs in this run: the profile's own `price` entry when it
    names one, else the entry of the model that decided (a fallback model has its own)."""
    return price_of(state.price if state.price and state.price != state.model else model)


def cost_of(state: RunState) -> float:
    """What the run's tokens so far cost, in USD, with what its ended sub-tasks spent."""
    return price_of(state.price).of(state.usage) + state.delegated.cost_usd


def usage_of(state: RunState) -> TokenUsage:
    """The run's tokens so far, with its ended sub-tasks' tokens."""
    return state.usage + state.delegated.usage


def spent(state: RunState) -> str:
    """What the run spent, for a human."""
    usage = usage_of(state)
    return (
        f"{usage.total_tokens} tokens ({usage.prompt_tokens} read, "
        f"{usage.completion_tokens} written), ${cost_of(state):.6f}, {state.step} steps"
    )


def exhausted(state: RunState) -> str | None:
    """Which token or cost budget the run has spent, if any."""
    if state.max_tokens is not None and usage_of(state).total_tokens >= state.max_tokens:
        return f"the run spent its budget of {state.max_tokens} tokens: {spent(state)}"
    if state.max_cost_usd is not None and cost_of(state) >= state.max_cost_usd:
        return f"the run spent its budget of ${state.max_cost_usd:g}: {spent(state)}"
    return None


def last_step(state: RunState) -> str | None:
    """Why the step about to start must be the last one, if it must.

    A step is expected to cost about what the previous one did, so the model is warned while
    one more step still fits.
    """
    if state.step + 1 >= state.max_steps:
        return f"this is step {state.step + 1} of at most {state.max_steps}"
    step_tokens = state.last_usage.total_tokens
    used = usage_of(state).total_tokens
    if state.max_tokens is not None and used + step_tokens >= state.max_tokens:
        return f"{used} of {state.max_tokens} tokens are spent"
    step_cost = price_of(state.price).of(state.last_usage)
    if state.max_cost_usd is not None and cost_of(state) + step_cost >= state.max_cost_usd:
        return f"${cost_of(state):.6f} of ${state.max_cost_usd:g} is spent"
    if state.deadline_at is not None:
        allowed = state.deadline_at - state.started_at
        if state.updated_at - state.started_at >= allowed * WRAP_UP_AT:
            return "the run's time is almost up"
    return None


def wrap_up_note(why: str) -> str:
    """The note asking the model to finish now."""
    return (
        f"[loopline] Budget: {why}. This is your last step: give your final answer now, "
        "with what you have, and call no more tools."
    )
