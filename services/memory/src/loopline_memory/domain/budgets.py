"""Budgets of a run: what its tokens cost, when a limit is spent, when the next step is the last.

Pure: time is the run's latest event time, never a clock, so replays decide the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopline_events import TokenUsage

if TYPE_CHECKING:
    from loopline_memory.domain.state import RunState


@dataclass(frozen=True)
class Price:
    """USD per million tokens read (prompt) and written (completion)."""

    prompt_per_mtok: float
    completion_per_mtok: float

    def of(self, usage: TokenUsage) -> float:
        """What `usage` costs, in USD."""
        spent = (
            usage.prompt_tokens * self.prompt_per_mtok
            + usage.completion_tokens * self.completion_per_mtok
        )
        return round(spent / 1_000_000, 9)


PRICE_TABLE: Mapping[str, Price] = {
    # The demo model costs nothing to run; a nominal price lets cost budgets be exercised.
    "demo": Price(prompt_per_mtok=1.0, completion_per_mtok=2.0),
    "openai": Price(prompt_per_mtok=2.5, completion_per_mtok=10.0),
    "openai:gpt-4o": Price(prompt_per_mtok=2.5, completion_per_mtok=10.0),
    "openai:gpt-4o-mini": Price(prompt_per_mtok=0.15, completion_per_mtok=0.6),
}
"""Prices by model (or by a profile's `price` entry). A model missing here costs nothing:
cost budgets then never trip, token budgets still do."""

FREE = Price(0.0, 0.0)

WRAP_UP_AT = 0.9
"""Share of the wall-clock budget after which the next step is the last."""


def price_of(key: str) -> Price:
    """The price table's entry `key`, or free."""
    return PRICE_TABLE.get(key, FREE)


def cost_of(state: RunState) -> float:
    """What the run's tokens so far cost, in USD."""
    return price_of(state.price).of(state.usage)


def spent(state: RunState) -> str:
    """What the run spent, for a human."""
    usage = state.usage
    return (
        f"{usage.total_tokens} tokens ({usage.prompt_tokens} read, "
        f"{usage.completion_tokens} written), ${cost_of(state):.6f}, {state.step} steps"
    )


def exhausted(state: RunState) -> str | None:
    """Which token or cost budget the run has spent, if any."""
    if state.max_tokens is not None and state.usage.total_tokens >= state.max_tokens:
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
    if state.max_tokens is not None and state.usage.total_tokens + step_tokens >= state.max_tokens:
        return f"{state.usage.total_tokens} of {state.max_tokens} tokens are spent"
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
