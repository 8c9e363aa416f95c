"""Backoff between model attempts: exponential ceiling, full jitter, capped, Retry-After first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loopline_planner.domain.retry import (
    BASE_DELAY_S,
    MAX_DELAY_S,
    backoff_ceiling,
    retry_delay,
)

attempts = st.integers(min_value=1, max_value=10_000)


@given(attempts)
def test_the_ceiling_doubles_from_the_base_until_the_cap(attempt: int) -> None:
    ceiling = backoff_ceiling(attempt)
    assert ceiling == min(MAX_DELAY_S, BASE_DELAY_S * 2 ** min(attempt - 1, 100))
    assert backoff_ceiling(attempt + 1) >= ceiling


@given(attempts, st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_a_jittered_delay_stays_between_zero_and_the_ceiling(attempt: int, draw: float) -> None:
    # Even a source of randomness that strays out of range cannot push the delay out of it.
    delay = retry_delay(attempt, uniform=lambda low, high: draw)
    assert 0.0 <= delay <= backoff_ceiling(attempt) <= MAX_DELAY_S


@given(attempts, st.floats(min_value=0.0, max_value=1.0))
def test_full_jitter_draws_over_the_whole_range(attempt: int, fraction: float) -> None:
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return low + (high - low) * fraction

    delay = retry_delay(attempt, uniform=uniform)
    assert seen == [(0.0, backoff_ceiling(attempt))]
    assert delay == pytest.approx(backoff_ceiling(attempt) * fraction)


@given(attempts)
def test_the_default_randomness_stays_in_range(attempt: int) -> None:
    assert 0.0 <= retry_delay(attempt) <= backoff_ceiling(attempt)


@given(attempts, st.floats(allow_nan=False, allow_infinity=True))
def test_retry_after_wins_over_jitter_but_never_past_the_cap(attempt: int, after: float) -> None:
    delay = retry_delay(attempt, retry_after_s=after, uniform=lambda low, high: high)
    assert delay == min(MAX_DELAY_S, max(0.0, after))


@given(
    attempts, st.floats(min_value=0.001, max_value=10), st.floats(min_value=0.001, max_value=100)
)
def test_base_and_cap_are_respected(attempt: int, base: float, cap: float) -> None:
    assert backoff_ceiling(1, base_s=base, cap_s=cap) == min(base, cap)
    assert retry_delay(attempt, base_s=base, cap_s=cap) <= cap


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_ceiling(attempt)
