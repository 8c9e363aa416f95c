"""What recovery does with a dead letter: classify it, retry it, or park it and fail its run.

Pure rules, no I/O: a dead letter and how often its message was retried in, a verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from loopline_events import (
    CONTEXTS,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RETRIES_HEADER,
    RETRY_TOPICS,
    DeadLettered,
    DeadLetterKind,
    FailureReason,
)


class Category(StrEnum):
    """The class of a dead letter, which decides its fate."""

    TRANSIENT = "transient"
    """A dependency failed; the same message can succeed later: retried with backoff."""
    POISON = "poison"
    """The message itself cannot be handled (undecodable, too big, a handler bug): parked."""
    SCHEMA = "schema"
    """Valid bytes of a shape or version this service does not know: parked for a redrive
    once a service that knows it is deployed."""
    BUDGET = "budget"
    """The run's (or the tenant's) budget refused the work: parked, retrying cannot help."""
    ORPHAN = "orphan"
    """An event answering nothing its run asked (forged or misrouted): parked, and never a
    reason to fail the run it names."""
    FORBIDDEN = "forbidden"
    """A goal or command its sender may not send: parked, and never a reason to fail the run
    it names (the run is another's)."""


SCHEMA_KINDS = {DeadLetterKind.SCHEMA, DeadLetterKind.UNKNOWN_TYPE, DeadLetterKind.UNKNOWN_VERSION}

RING_TOPICS = {GOALS.name, CONTEXTS.name, DECISIONS.name, OBSERVATIONS.name}
"""Topics whose messages carry a run forward: losing one stalls the run, so it is failed.
A bad control command or result stalls nothing; it is only parked."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays of the retry tiers (one per retry topic) and how many retries a message gets."""

    delays_s: tuple[float, ...] = (1.0, 5.0, 25.0)
    max_retries: int = 3

    def __post_init__(self) -> None:
        if len(self.delays_s) != len(RETRY_TOPICS):
            raise ValueError(f"give one delay per retry tier ({len(RETRY_TOPICS)})")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one dead letter."""

    category: Category
    retries: int
    """Retries its message has had so far."""
    retry_topic: str | None = None
    """Set when it is retried: the tier it waits in."""
    not_before: datetime | None = None
    fail_reason: FailureReason | None = None
    """Set when it is parked and its run must fail."""
    message: str = ""


def classify(letter: DeadLettered) -> Category:
    """Transient, poison, schema or budget, by the dead letter's kind and error."""
    if letter.kind is DeadLetterKind.TRANSIENT:
        return Category.TRANSIENT
    if letter.kind is DeadLetterKind.ORPHAN:
        return Category.ORPHAN
    if letter.kind is DeadLetterKind.FORBIDDEN:
        return Category.FORBIDDEN
    if letter.kind in SCHEMA_KINDS:
        return Category.SCHEMA
    if letter.kind is DeadLetterKind.BUDGET:  # the handler raised a BudgetExceededError
        return Category.BUDGET
    return Category.POISON


def retries_of(letter: DeadLettered) -> int:
    """How often recovery has re-published the letter's message already."""
    for key, value in letter.original_headers:
        if key == RETRIES_HEADER:
            try:
                return max(0, int(value))
            except ValueError:
                return 0
    return 0


def judge(letter: DeadLettered, run_id: str, now: datetime, policy: RetryPolicy) -> Verdict:
    """Retry a transient letter while it has retries left; park anything else, and fail its
    run when the letter came from the ring and names a run."""
    category = classify(letter)
    retries = retries_of(letter)
    if category is Category.TRANSIENT and retries < policy.max_retries:
        tier = min(retries, len(RETRY_TOPICS) - 1)
        return Verdict(
            category,
            retries,
            retry_topic=RETRY_TOPICS[tier].name,
            not_before=now + timedelta(seconds=policy.delays_s[tier]),
        )
    described = _describe(letter, category, retries)
    if category in (Category.ORPHAN, Category.FORBIDDEN):
        return Verdict(category, retries, message=described)
    if letter.source_topic not in RING_TOPICS or run_id in ("", "-"):
        return Verdict(category, retries, message=described)
    return Verdict(category, retries, fail_reason=_reason(category, letter), message=described)


def _reason(category: Category, letter: DeadLettered) -> FailureReason:
    if category is Category.BUDGET:
        return FailureReason.BUDGET_EXHAUSTED
    if category is Category.TRANSIENT:
        return FailureReason.STALLED  # retries exhausted: the run cannot move on
    if letter.source_topic == GOALS.name:
        return FailureReason.INVALID_GOAL
    return FailureReason.POISON


def _describe(letter: DeadLettered, category: Category, retries: int) -> str:
    tried = f" after {retries} retries" if retries else ""
    event = f" {letter.event_type}" if letter.event_type else ""
    return (
        f"a{event} message of {letter.source_topic} could not be handled by "
        f"{letter.consumer_group}{tried} ({category.value}, {letter.kind.value}): "
        f"{letter.error[:300]}"
    )
