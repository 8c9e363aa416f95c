"""Metrics read off the events themselves: runs, model calls and tool calls.

Each is counted where its record is produced by a handler (after the broker's ack), so a
service that only reads these events (a watchdog, a dashboard feed) never counts them twice,
and a re-publication (a retry, a re-drive) is not a new step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from loopline_events import (
    ContextAssembled,
    Envelope,
    GoalSubmitted,
    ModelDecided,
    ModelFailed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunForked,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolErrorKind,
)

from loopline_bus._instruments import BusMetrics
from loopline_bus._records import Outbound

UNKNOWN = "unknown"
"""The label of a value that is not one of a known few (a tool no registry has, a bad type)."""

RUN_STARTS = frozenset({GoalSubmitted.TYPE, RunForked.TYPE})

Observer = Callable[[Envelope[Any], Envelope[Any]], None]
"""Reads one produced event and the event it answers into the metrics."""


class DerivedMetrics:
    """The event-derived metrics of the contract, fed by MetricsMiddleware."""

    def __init__(self, metrics: BusMetrics):
        self.m = metrics
        self.observers: dict[str, Observer] = {
            RunCompleted.TYPE: self._completed,
            RunFailed.TYPE: self._failed,
            RunCancelled.TYPE: self._cancelled,
            ModelDecided.TYPE: self._decided,
            ModelFailed.TYPE: self._model_failed,
            ToolCallSucceeded.TYPE: self._tool_succeeded,
            ToolCallFailed.TYPE: self._tool_failed,
        }

    def produced(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        """A handler's output `event`, answering `cause`, was acknowledged."""
        observer = self.observers.get(event.type)
        if observer is not None:
            observer(event, cause)

    def answered(self, event: Envelope[Any], outputs: Sequence[Outbound]) -> None:
        """A run-starting event was handled. A run starts when its goal is answered (memory's
        first context, or its refusal): readers that answer nothing do not count it."""
        if not outputs:
            return
        agent = UNKNOWN  # an agent no profile names is client input: unbounded
        for out in outputs:
            if isinstance(out.event.payload, ContextAssembled):
                agent = out.event.payload.agent
                break
        self.m.runs_started(agent).inc()

    def _finished(self, outcome: str, reason: str, steps: int) -> None:
        self.m.runs_finished(outcome, reason).inc()
        self.m.run_steps.observe(steps)

    def _completed(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        self._finished("completed", "", event.payload.steps)

    def _failed(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        self._finished("failed", event.payload.reason.value, event.payload.steps)

    def _cancelled(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        self._finished("cancelled", "", event.payload.steps)

    def _decided(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        decision: ModelDecided = event.payload
        self.m.model_latency(decision.model).observe(decision.latency_ms / 1000)
        self.m.model_tokens(decision.model, "prompt").inc(decision.usage.prompt_tokens)
        self.m.model_tokens(decision.model, "completion").inc(decision.usage.completion_tokens)
        self._step("decision", cause, ContextAssembled.TYPE)

    def _model_failed(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        self.m.model_failures(event.payload.model).inc()
        self._step("decision", cause, ContextAssembled.TYPE)

    def _tool_succeeded(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        result: ToolCallSucceeded = event.payload
        self.m.tool_calls(result.tool, "succeeded").inc()
        self.m.tool_duration(result.tool).observe(result.duration_ms / 1000)
        self._step("observation", cause, ModelDecided.TYPE)

    def _tool_failed(self, event: Envelope[Any], cause: Envelope[Any]) -> None:
        failure: ToolCallFailed = event.payload
        kind = failure.error.kind
        # The executor checks the registry first: an unknown_tool failure is exactly a name
        # the registry does not know, which a model may invent without bound.
        tool = UNKNOWN if kind is ToolErrorKind.UNKNOWN_TOOL else failure.tool
        self.m.tool_calls(tool, "failed").inc()
        self.m.tool_failures(tool, kind.value).inc()
        self._step("observation", cause, ModelDecided.TYPE)

    def _step(self, kind: str, cause: Envelope[Any], asked_by: str) -> None:
        if cause.type != asked_by:
            return
        # Wall clocks of two processes: a skewed clock must not make a negative duration.
        seconds = max(0.0, time.time() - cause.occurred_at.timestamp())
        self.m.step_duration(kind).observe(seconds)
