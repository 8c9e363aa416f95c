"""OpenTelemetry tracing for a service process, configured by the standard OTEL_* variables.

Off unless asked for: OTEL_TRACES_EXPORTER (e.g. `otlp`, `console`; comma separated) or an
OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, exporter
`otlp`). OTEL_SDK_DISABLED=true wins. The OTLP exporter is the `otlp` extra of
loopline-runtime (`opentelemetry-exporter-otlp-proto-http`); sampling, batching and resource
attributes follow the SDK's own OTEL_* variables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

log = logging.getLogger("loopline.tracing")

EXPORTER_GROUP = "opentelemetry_traces_exporter"
# `otlp` names the meta-package's exporter; the extra we ship registers the HTTP one.
ALIASES = {"otlp": ("otlp", "otlp_proto_http", "otlp_proto_grpc")}


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for (none: tracing stays off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = "otlp" if endpoint else ""
    return [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]


def _exporter(name: str) -> SpanExporter:
    available = {e.name: e for e in entry_points(group=EXPORTER_GROUP)}
    for candidate in ALIASES.get(name, (name,)):
        if candidate in available:
            exporter: SpanExporter = available[candidate].load()()
            return exporter
    hint = " (install loopline-runtime[otlp])" if name.startswith("otlp") else ""
    known = ", ".join(sorted(available)) or "none"
    raise LookupError(f"no span exporter named {name!r}{hint}; installed: {known}")


def configure_tracing(
    service: str, environ: Mapping[str, str] | None = None
) -> Callable[[], None] | None:
    """Install a tracer provider exporting as the environment says; the function that flushes
    and shuts it down, or None when tracing stays off (or cannot be set up: logged)."""
    env = os.environ if environ is None else environ
    names = exporter_names(env)
    if not names:
        return None
    try:
        exporters = [_exporter(name) for name in names]
    except Exception as exc:
        log.error("tracing stays off: %s", exc)
        return None
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"loopline-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans to %s", ", ".join(names))
    return provider.shutdown
