"""How late the event loop runs: the one number that says a handler is hogging it.

Every service is one event loop: a handler that computes for a second (a pathological input)
delays every other run of that process by a second. A task asks to wake every half second and
measures how late it wakes; the gauge holds the latest delay and the histogram all of them.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Gauge, Histogram

INTERVAL_S = 0.5

LAG = Gauge(
    "loopline_event_loop_lag_seconds",
    "How late the event loop ran the last wake-up it was asked for (every 0.5 s).",
)
LAGS = Histogram(
    "loopline_event_loop_lag",
    "How late the event loop ran each wake-up it was asked for, in seconds.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


async def watch_loop_lag(interval_s: float = INTERVAL_S) -> None:
    """Measure the loop's lag until cancelled."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(interval_s)
        late = max(0.0, time.perf_counter() - asked - interval_s)
        LAG.set(late)
        LAGS.observe(late)
