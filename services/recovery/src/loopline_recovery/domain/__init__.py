"""Recovery's pure rules: how a dead letter is classified and what becomes of it; when a run
has stalled and what the watchdog does about it."""

from loopline_recovery.domain.peek import REDRIVE_HEADER, REDRIVE_OF_HEADER, peek
from loopline_recovery.domain.verdict import (
    Category,
    RetryPolicy,
    Verdict,
    classify,
    judge,
    retries_of,
)
from loopline_recovery.domain.watch import (
    Expire,
    Fail,
    Held,
    Kind,
    Location,
    Policy,
    Redrive,
    Redriven,
    Seen,
    Timing,
    Watch,
)

__all__ = [
    "REDRIVE_HEADER",
    "REDRIVE_OF_HEADER",
    "Category",
    "Expire",
    "Fail",
    "Held",
    "Kind",
    "Location",
    "Policy",
    "Redrive",
    "Redriven",
    "RetryPolicy",
    "Seen",
    "Timing",
    "Verdict",
    "Watch",
    "classify",
    "judge",
    "peek",
    "retries_of",
]
