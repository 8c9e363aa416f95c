"""The one error base and the one backoff: every failure Loopline raises on purpose says
whether trying again can help, and every retry waits the same way.

They live here, in the contracts package, because it is the one library every layer already
imports (tools, the bus, the stores in `loopline_runtime` and the services) and it has no
dependency but pydantic: a model adapter, a tool, a store and the bus's dispatcher raise and
read the same class, and the retry policy an error carries is part of the contract between
the code that raises it and the middleware that retries or dead-letters it.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "Backoff",
    "BudgetExceededError",
    "ForbiddenError",
    "LooplineError",
    "OrphanError",
    "TransientError",
    "parse_retry_after",
    "retry_after_of",
]


class LooplineError(Exception):
    """Base of the errors Loopline raises on purpose; it carries its retry policy.

    `retryable`: whether the same work can succeed if tried again (the code that raises knows;
    middleware does the retrying). `retry_after`: seconds the failing side asked to be left
    alone (an HTTP `Retry-After`), when it asked. Subclasses set the class default of
    `retryable`; an instance may override it.
    """

    retryable: bool = False

    def __init__(
        self, message: str = "", *, retryable: bool | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = _seconds(retry_after)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, retryable={self.retryable}, "
            f"retry_after={self.retry_after})"
        )


class TransientError(LooplineError):
    """A dependency failed for now (unreachable, overloaded): the same work can succeed later."""

    retryable = True


class BudgetExceededError(LooplineError):
    """The run's or the tenant's budget refused the work: retrying cannot help. The bus
    dead-letters it as `budget`, and recovery fails the run for it."""

    retryable = False


class OrphanError(LooplineError):
    """An event answering nothing its run asked (forged, or misrouted): never retried, never
    folded. The bus dead-letters it as `orphan`, and recovery parks it without failing the
    run it names (it may be another's lie)."""

    retryable = False


class ForbiddenError(LooplineError):
    """An event its sender may not send: a goal or command unsigned, signed by an unknown key
    or one that may not act for its tenant, or a command about another tenant's run. Never
    retried, never folded; dead-lettered as `forbidden`, and parked by recovery without
    failing the run it names."""

    retryable = False


def retry_after_of(error: BaseException) -> float | None:
    """The wait `error` asked for, if it is a `LooplineError` that asked."""
    return error.retry_after if isinstance(error, LooplineError) else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from an HTTP `Retry-After` header: a number of seconds or an HTTP date; None
    when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        return _seconds(float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _seconds((when - (now or datetime.now(UTC))).total_seconds())


def _seconds(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return max(0.0, value)


_MAX_DOUBLINGS = 62
"""Doubling stops here: the ceiling is long past any cap, and the float stays finite."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between tries: exponential, fully jittered, capped; a server's `retry_after` wins.

    Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of
    many callers that failed together, instead of sending them back in one wave. Pure: the
    randomness is passed in where a test needs it.
    """

    base_s: float = 0.5
    """The ceiling of the first wait; it doubles with each failed try."""
    cap_s: float = 30.0
    """No wait is longer, not even one a server asks for."""
    jitter: bool = True
    """False: wait the ceiling itself (deterministic, for middleware tests and tiers)."""

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("backoff delays must not be negative")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed try number `attempt` (from 1): `base_s * 2**(attempt-1)`,
        at most `cap_s`."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, not {attempt}")
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> float:
        """Seconds to wait after failed try number `attempt` before the next one.

        The other side's `retry_after` wins when it gave one (it knows its load better than we
        do), within the cap; otherwise a draw in `[0, ceiling(attempt)]`.
        """
        if retry_after is not None:
            return min(self.cap_s, max(0.0, retry_after))
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return min(ceiling, max(0.0, uniform(0.0, ceiling)))

    def after(self, error: BaseException, attempt: int) -> float:
        """The wait after `error` ended try number `attempt`."""
        return self.delay(attempt, retry_after=retry_after_of(error))
