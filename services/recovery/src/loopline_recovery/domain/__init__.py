"""Recovery's pure rules: how a dead letter is classified and what becomes of it."""

from loopline_recovery.domain.verdict import (
    Category,
    RetryPolicy,
    Verdict,
    classify,
    judge,
    retries_of,
)

__all__ = ["Category", "RetryPolicy", "Verdict", "classify", "judge", "retries_of"]
