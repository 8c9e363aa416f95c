"""Recovery's rules, without I/O: the class of a dead letter and what becomes of it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from loopline_events import (
    RETRIES_HEADER,
    DeadLettered,
    DeadLetterKind,
    FailureReason,
)
from loopline_recovery.domain import Category, RetryPolicy, classify, judge, retries_of

NOW = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(delays_s=(1.0, 5.0, 25.0), max_retries=3)


def letter(
    kind: DeadLetterKind,
    *,
    source: str = "agent.decisions",
    error: str = "boom",
    retries: int | None = None,
) -> DeadLettered:
    headers = [] if retries is None else [(RETRIES_HEADER, base64.b64encode(str(retries).encode()))]
    return DeadLettered(
        source_topic=source,
        partition=0,
        offset=1,
        consumer_group="g",
        kind=kind,
        error=error,
        original_value=base64.b64encode(b"x"),
        original_headers=headers,
    )


@pytest.mark.parametrize(
    ("kind", "error", "category"),
    [
        (DeadLetterKind.TRANSIENT, "Flaky: down", Category.TRANSIENT),
        (DeadLetterKind.UNDECODABLE, "not json", Category.POISON),
        (DeadLetterKind.OVERSIZED, "too big", Category.POISON),
        (DeadLetterKind.HANDLER, "KeyError: 'x'", Category.POISON),
        (DeadLetterKind.BUDGET, "BudgetExceededError: 10 > 5 tokens", Category.BUDGET),
        # The class is what the error says of itself, never its name.
        (DeadLetterKind.HANDLER, "TokenBudgetExceeded: 10 > 5", Category.POISON),
        (DeadLetterKind.SCHEMA, "missing goal", Category.SCHEMA),
        (DeadLetterKind.UNKNOWN_TYPE, "Nope", Category.SCHEMA),
        (DeadLetterKind.UNKNOWN_VERSION, "v9", Category.SCHEMA),
    ],
)
def test_each_kind_has_its_class(kind: DeadLetterKind, error: str, category: Category) -> None:
    assert classify(letter(kind, error=error)) is category


def test_transient_letters_climb_the_tiers_then_fail_the_run_as_stalled() -> None:
    tiers = []
    for retries in range(3):
        verdict = judge(letter(DeadLetterKind.TRANSIENT, retries=retries), "r", NOW, POLICY)
        tiers.append((verdict.retry_topic, verdict.not_before))
        assert verdict.fail_reason is None
    assert tiers == [
        ("agent.retry.1", NOW + timedelta(seconds=1)),
        ("agent.retry.2", NOW + timedelta(seconds=5)),
        ("agent.retry.3", NOW + timedelta(seconds=25)),
    ]
    exhausted = judge(letter(DeadLetterKind.TRANSIENT, retries=3), "r", NOW, POLICY)
    assert exhausted.retry_topic is None
    assert exhausted.fail_reason is FailureReason.STALLED


@pytest.mark.parametrize(
    ("kind", "source", "error", "reason"),
    [
        (DeadLetterKind.SCHEMA, "agent.goals", "x", FailureReason.INVALID_GOAL),
        (DeadLetterKind.UNDECODABLE, "agent.contexts", "x", FailureReason.POISON),
        (
            DeadLetterKind.BUDGET,
            "agent.observations",
            "BudgetExceededError: $",
            FailureReason.BUDGET_EXHAUSTED,
        ),
        (DeadLetterKind.UNDECODABLE, "agent.control", "x", None),
        (DeadLetterKind.UNDECODABLE, "agent.results", "x", None),
    ],
)
def test_parked_letters_of_the_ring_fail_their_run(
    kind: DeadLetterKind, source: str, error: str, reason: FailureReason | None
) -> None:
    verdict = judge(letter(kind, source=source, error=error), "run-1", NOW, POLICY)
    assert verdict.retry_topic is None
    assert verdict.fail_reason is reason


def test_a_letter_without_a_run_fails_nothing() -> None:
    verdict = judge(letter(DeadLetterKind.UNDECODABLE), "-", NOW, POLICY)
    assert verdict.fail_reason is None


def test_a_garbled_retry_header_counts_as_none() -> None:
    garbled = letter(DeadLetterKind.TRANSIENT).model_copy(
        update={"original_headers": [(RETRIES_HEADER, b"many")]}
    )
    assert retries_of(garbled) == 0


def test_an_orphan_is_parked_and_never_fails_the_run_it_names() -> None:
    letter = DeadLettered(
        source_topic="agent.observations",
        partition=0,
        offset=1,
        consumer_group="memory",
        kind=DeadLetterKind.ORPHAN,
        error="OrphanEventError: ToolCallSucceeded of run r: result of call_1_0: answers x",
        original_value=b"e30=",
    )
    verdict = judge(letter, "r", NOW, RetryPolicy())
    assert verdict.category is Category.ORPHAN
    assert (verdict.retry_topic, verdict.fail_reason) == (None, None)
