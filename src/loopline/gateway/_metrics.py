"""The gateway's metrics (prometheus_client's default registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "loopline_gateway_requests",
    "HTTP requests answered, by route template and status class.",
    ["method", "route", "status"],
)
"""Exposed as `loopline_gateway_requests_total`."""
REQUEST_SECONDS = Histogram(
    "loopline_gateway_request_duration_seconds",
    "Time to answer a request (an event stream: until its headers).",
    ["method", "route"],
)
STREAMS = Gauge("loopline_gateway_streams", "Event streams open now.")
EVENTS_SENT = Counter("loopline_gateway_events_sent", "Events sent on event streams.")
"""Exposed as `loopline_gateway_events_sent_total`."""
