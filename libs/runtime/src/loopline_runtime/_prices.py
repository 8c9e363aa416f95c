"""What model tokens cost: one price table, read by memory (run budgets, the usage ledger) and
the planner (tenant cost quotas), so both price a call alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from loopline_events import TokenUsage


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens: read at full price, read from the provider's prompt cache,
    written to it, and written by the model."""

    prompt_per_mtok: float
    completion_per_mtok: float
    cached_prompt_per_mtok: float | None = None
    """Tokens served from the prompt cache; None: the full input price."""
    cache_write_per_mtok: float | None = None
    """Tokens written to the prompt cache; None: the full input price."""

    def of(self, usage: TokenUsage) -> float:
        """What `usage` costs, in USD, each kind of token at its price."""
        cached = (
            self.prompt_per_mtok
            if self.cached_prompt_per_mtok is None
            else (self.cached_prompt_per_mtok)
        )
        written = (
            self.prompt_per_mtok
            if self.cache_write_per_mtok is None
            else (self.cache_write_per_mtok)
        )
        spent = (
            usage.uncached_prompt_tokens * self.prompt_per_mtok
            + usage.cached_tokens * cached
            + usage.cache_write_tokens * written
            + usage.completion_tokens * self.completion_per_mtok
        )
        return round(spent / 1_000_000, 9)


PRICE_TABLE: Mapping[str, Price] = {
    # The demo model costs nothing to run; a nominal price lets cost budgets be exercised.
    "demo": Price(1.0, 2.0, cached_prompt_per_mtok=0.1, cache_write_per_mtok=1.25),
    # OpenAI caches long prompts by itself: cached input at half price or less, no write fee.
    "openai": Price(2.5, 10.0, cached_prompt_per_mtok=1.25),
    "openai:gpt-4o": Price(2.5, 10.0, cached_prompt_per_mtok=1.25),
    "openai:gpt-4o-mini": Price(0.15, 0.6, cached_prompt_per_mtok=0.075),
    "openai:gpt-4.1": Price(2.0, 8.0, cached_prompt_per_mtok=0.5),
    "openai:gpt-4.1-mini": Price(0.4, 1.6, cached_prompt_per_mtok=0.1),
    # Anthropic caches what `cache_control` marks: reads at a tenth, writes at 1.25 times.
    "anthropic:claude-opus-4-1": Price(15.0, 75.0, 1.5, 18.75),
    "anthropic:claude-sonnet-4-5": Price(3.0, 15.0, 0.3, 3.75),
    "anthropic:claude-haiku-4-5": Price(1.0, 5.0, 0.1, 1.25),
}
"""Prices by model id (or by a profile's `price` entry). A model missing here costs nothing:
cost budgets and cost quotas then never trip, token ones still do."""

FREE = Price(0.0, 0.0)


def price_of(key: str) -> Price:
    """The price table's entry `key`, or free."""
    return PRICE_TABLE.get(key, FREE)
