"""The Prometheus instruments of the bus, and a cache of their labelled children.

Names and labels are the metrics contract other tools (dashboards, alerts) rely on: do not
rename them. Labels are low-cardinality only: never a run id.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

M = TypeVar("M", Counter, Gauge, Histogram)

# Seconds: a handler or a tool is often milliseconds, a model step may take a minute.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STEP_BUCKETS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233)


class Children(Generic[M]):
    """A metric's labelled children, looked up once per label values and kept.

    `metric.labels(...)` validates and locks on every call; the hot path asks this dict instead.
    """

    def __init__(self, metric: M):
        self.metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.metric.labels(*labels)
        return child

    def remove(self, *labels: str) -> None:
        """Drop a series (e.g. the lag of a partition this process no longer owns)."""
        if self._children.pop(labels, None) is not None:
            self.metric.remove(*labels)


class BusMetrics:
    """Every metric the bus middleware keeps, registered in `registry`."""

    _default: BusMetrics | None = None

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

        self.registry = registry
        self.consumed = Children(
            counter("loopline_events_consumed_total", "Records read.", "topic", "type")
        )
        self.produced = Children(
            counter("loopline_events_produced_total", "Records acknowledged.", "topic", "type")
        )
        self.dead_lettered = Children(
            counter(
                "loopline_events_dead_lettered_total",
                "Records that could not be handled, by source topic and DeadLetterKind.",
                "topic",
                "kind",
            )
        )
        self.handler_duration = Children(
            histogram(
                "loopline_handler_duration_seconds",
                "Time of one try of a handler.",
                LATENCY_BUCKETS,
                "topic",
                "type",
            )
        )
        self.retries = Children(
            counter(
                "loopline_handler_retries_total",
                "In-place retries of handlers after retryable errors.",
                "topic",
                "type",
            )
        )
        self.lag = Children(
            Gauge(
                "loopline_consumer_lag_messages",
                "High-water mark minus position, per partition this process consumes.",
                ("group", "topic", "partition"),
                registry=registry,
            )
        )
        self.step_duration = Children(
            histogram(
                "loopline_step_duration_seconds",
                "From the event asking for a step (context, decision) to the broker's ack of "
                "the step's record (decision, observation).",
                LATENCY_BUCKETS,
                "kind",
            )
        )
        self.runs_started = Children(
            counter("loopline_runs_started_total", "Runs started, by agent profile.", "agent")
        )
        self.runs_finished = Children(
            counter(
                "loopline_runs_finished_total",
                "Runs ended; reason is empty unless failed.",
                "outcome",
                "reason",
            )
        )
        self.run_steps = Histogram(
            "loopline_run_steps",
            "Model steps of each finished run.",
            registry=registry,
            buckets=STEP_BUCKETS,
        )
        self.model_latency = Children(
            histogram(
                "loopline_model_latency_seconds",
                "How long the model took to decide.",
                LATENCY_BUCKETS,
                "model",
            )
        )
        self.model_tokens = Children(
            counter("loopline_model_tokens_total", "Tokens, by model.", "model", "kind")
        )
        self.model_failures = Children(
            counter("loopline_model_failures_total", "Steps the model failed.", "model")
        )
        self.tool_calls = Children(
            counter("loopline_tool_calls_total", "Tool calls ended.", "tool", "outcome")
        )
        self.tool_failures = Children(
            counter(
                "loopline_tool_failures_total",
                "Failed tool calls by ToolErrorKind.",
                "tool",
                "kind",
            )
        )
        self.tool_duration = Children(
            histogram(
                "loopline_tool_duration_seconds",
                "Time of a tool call's successful try.",
                LATENCY_BUCKETS,
                "tool",
            )
        )

    @classmethod
    def default(cls) -> BusMetrics:
        """The process-wide instruments, in prometheus_client's default registry."""
        if cls._default is None:
            cls._default = cls(REGISTRY)
        return cls._default
