"""When a service process traces: only when the standard OTEL_* variables ask for it."""

from __future__ import annotations

import logging

import pytest
from loopline_runtime import configure_tracing
from opentelemetry import trace


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": ""},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "TRUE"},
    ],
)
def test_tracing_stays_off_unless_asked_for(environ: dict[str, str]) -> None:
    assert configure_tracing("planner", environ) is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_an_exporter_that_is_not_installed_is_logged_and_tracing_stays_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="loopline.tracing"):
        assert configure_tracing("planner", {"OTEL_TRACES_EXPORTER": "zipkin_json"}) is None
    assert "no span exporter named 'zipkin_json'" in caplog.text
    assert "console" in caplog.text  # what is installed instead
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
