"""The planner's own metrics (prometheus_client's default registry): waits for capacity,
quota refusals, rate-limited answers and fallbacks. Labels are bounded: a delay reason, an
action, or a model id the agent profiles name."""

from __future__ import annotations

from loopline_events import DelayReason
from prometheus_client import Counter, Gauge, Histogram

CALLS_WAITING = Gauge(
    "loopline_model_calls_waiting",
    "Model calls waiting for capacity now: a rate, a quota, or a provider's hold.",
    ["reason"],
)
WAIT_SECONDS = Histogram(
    "loopline_model_wait_seconds",
    "How long model calls waited for capacity before they were made (or refused).",
    ["reason"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
QUOTA_REFUSALS = Counter(
    "loopline_quota_refusals",
    "Model calls refused because their tenant was over a quota: `paused` (they wait) or "
    "`failed` (the run ends with quota_exceeded).",
    ["action"],
)
RATE_LIMITED = Counter(
    "loopline_model_rate_limited",
    "Model calls the provider refused with 429 or 529 (each holds every replica).",
    ["model"],
)
FALLBACKS = Counter(
    "loopline_model_fallbacks",
    "Steps whose model was unavailable after its retries and went to a fallback model.",
    ["model"],
)


def waiting(reason: DelayReason, change: int) -> None:
    """A call starts (1) or stops (-1) waiting for `reason`."""
    CALLS_WAITING.labels(reason=reason.value).inc(change)


def waited(reason: DelayReason, seconds: float) -> None:
    """A call waited `seconds` in all, last for `reason`."""
    WAIT_SECONDS.labels(reason=reason.value).observe(seconds)


def quota_refusal(action: str) -> None:
    """A call found its tenant over a quota: `paused` or `failed`."""
    QUOTA_REFUSALS.labels(action=action).inc()


def rate_limited(model: str) -> None:
    """The provider of `model` refused a call for load."""
    RATE_LIMITED.labels(model=model).inc()


def fell_back(model: str) -> None:
    """`model` was unavailable; the step went to the next model of its profile."""
    FALLBACKS.labels(model=model).inc()
