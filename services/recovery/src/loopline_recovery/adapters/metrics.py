"""The watchdog's metrics (prometheus_client's default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ACTIVE_RUNS = Gauge(
    "loopline_active_runs", "Runs this recovery instance's watchdog tracks as active."
)
STALLED_RUNS = Counter(
    "loopline_stalled_runs",
    "Stalled runs the watchdog acted on: a step re-driven, or a run failed (stalled, or "
    "silent past its deadline).",
    ["action"],
)
"""Exposed as `loopline_stalled_runs_total{action=redriven|failed}`."""

REDRIVEN = STALLED_RUNS.labels(action="redriven")
FAILED = STALLED_RUNS.labels(action="failed")
