"""Progress lines on stderr, stamped with the time since the benchmark began."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def say(line: str) -> None:
    """Print one progress line (stderr, so stdout keeps only the table)."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {line}", file=sys.stderr, flush=True)


def elapsed() -> float:
    """Seconds since the benchmark began."""
    return time.monotonic() - _STARTED
