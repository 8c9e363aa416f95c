"""The one backoff: exponential ceiling, full jitter, capped, the other side's retry_after
first; and the one error base that carries it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loopline_events import Backoff, LooplineError, TransientError, parse_retry_after

attempts = st.integers(min_value=1, max_value=10_000)
WAITS = Backoff()


@given(attempts)
def test_the_ceiling_doubles_from_the_base_until_the_cap(attempt: int) -> None:
    ceiling = WAITS.ceiling(attempt)
    assert ceiling == min(WAITS.cap_s, WAITS.base_s * 2 ** min(attempt - 1, 100))
    assert WAITS.ceiling(attempt + 1) >= ceiling


@given(attempts, st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_a_jittered_delay_stays_between_zero_and_the_ceiling(attempt: int, draw: float) -> None:
    # Even a source of randomness that strays out of range cannot push the delay out of it.
    delay = WAITS.delay(attempt, uniform=lambda low, high: draw)
    assert 0.0 <= delay <= WAITS.ceiling(attempt) <= WAITS.cap_s


@given(attempts, st.floats(min_value=0.0, max_value=1.0))
def test_full_jitter_draws_over_the_whole_range(attempt: int, fraction: float) -> None:
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return low + (high - low) * fraction

    delay = WAITS.delay(attempt, uniform=uniform)
    assert seen == [(0.0, WAITS.ceiling(attempt))]
    assert delay == pytest.approx(WAITS.ceiling(attempt) * fraction)


@given(attempts)
def test_the_default_randomness_stays_in_range(attempt: int) -> None:
    assert 0.0 <= WAITS.delay(attempt) <= WAITS.ceiling(attempt)


@given(attempts, st.floats(allow_nan=False, allow_infinity=True))
def test_retry_after_wins_over_jitter_but_never_past_the_cap(attempt: int, after: float) -> None:
    delay = WAITS.delay(attempt, retry_after=after, uniform=lambda low, high: high)
    assert delay == min(WAITS.cap_s, max(0.0, after))


@given(
    attempts, st.floats(min_value=0.001, max_value=10), st.floats(min_value=0.001, max_value=100)
)
def test_base_and_cap_are_respected(attempt: int, base: float, cap: float) -> None:
    waits = Backoff(base_s=base, cap_s=cap)
    assert waits.ceiling(1) == min(base, cap)
    assert waits.delay(attempt) <= cap


def test_without_jitter_the_wait_is_the_ceiling() -> None:
    waits = Backoff(base_s=0.1, cap_s=1.0, jitter=False)
    assert [waits.delay(a) for a in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        WAITS.ceiling(attempt)


def test_an_error_carries_its_retry_policy_and_the_wait_it_asked_for() -> None:
    busy = TransientError("busy", retry_after=2.5)
    assert (busy.retryable, busy.retry_after) == (True, 2.5)
    assert WAITS.after(busy, 1) == 2.5
    assert "retryable=True" in repr(busy)
    refused = LooplineError("bad request")
    assert (refused.retryable, refused.retry_after) == (False, None)
    assert LooplineError("told", retryable=True).retryable
    assert 0.0 <= WAITS.after(ValueError("not ours"), 1) <= WAITS.ceiling(1)
    assert LooplineError("x", retry_after=float("nan")).retry_after is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("Wed, 02 Dec 2026 10:00:30 GMT", 30.0),
        ("soon", None),
        (None, None),
        ("inf", None),
    ],
)
def test_retry_after_headers_in_seconds_or_as_a_date(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds
