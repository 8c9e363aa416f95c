"""Backoff between attempts of a model call: exponential, with full jitter, capped.

Pure: the randomness is passed in, so the delays are tested without a clock or a model.
Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many
runs that failed together, instead of sending them back to the model in one wave.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BASE_DELAY_S = 0.5
"""The ceiling of the first wait; it doubles with each failed attempt."""
MAX_DELAY_S = 30.0
"""No wait is longer, not even one a server asks for with Retry-After."""
_MAX_DOUBLINGS = 62
"""Doubling stops here: the ceiling is long past any cap, and the float stays finite."""


def backoff_ceiling(
    attempt: int, *, base_s: float = BASE_DELAY_S, cap_s: float = MAX_DELAY_S
) -> float:
    """The longest wait after failed attempt number `attempt` (from 1): `base_s * 2**(attempt-1)`,
    at most `cap_s`."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    doublings = min(attempt - 1, _MAX_DOUBLINGS)
    return min(cap_s, base_s * 2.0**doublings)


def retry_delay(
    attempt: int,
    *,
    retry_after_s: float | None = None,
    base_s: float = BASE_DELAY_S,
    cap_s: float = MAX_DELAY_S,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after failed attempt number `attempt` before the next one.

    The server's own `retry_after_s` wins when it gave one (it knows its load better than we
    do); otherwise a uniform draw in `[0, backoff_ceiling(attempt)]`. Never negative, never
    more than `cap_s`.
    """
    if retry_after_s is not None:
        return min(cap_s, max(0.0, retry_after_s))
    ceiling = backoff_ceiling(attempt, base_s=base_s, cap_s=cap_s)
    return min(ceiling, max(0.0, uniform(0.0, ceiling)))
