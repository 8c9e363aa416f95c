"""A run's timeline read step by step: what the inspector shows of each step.

Pure: it takes the events memory recorded of a run (its timeline) and the cost of each
decision (its usage ledger), and groups them by step.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

OUTPUT_CHARS = 4_000
"""How much of a tool's output a step shows (the whole is in the log and the artifact store)."""


class Recorded(Protocol):
    """An event of the timeline (`reads.TimelineEntry`)."""

    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def event_id(self) -> uuid.UUID | None: ...


@dataclass(frozen=True)
class ToolCallDetail:
    """One tool call of a step, and how it ended."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    outcome: str = "pending"
    """`succeeded`, `failed` or `pending` (no result recorded yet)."""
    output: str = ""
    """Its output (the first OUTPUT_CHARS characters), or its error."""
    output_chars: int = 0
    error_kind: str | None = None
    attempts: int = 0
    duration_ms: float = 0.0
    finished_at: datetime | None = None


@dataclass
class StepDetail:
    """One step of a run: the context the model was given, its decision, the tool calls."""

    seq: int
    purpose: str = "step"
    """`step`, or `summary` (the model was asked to summarise older messages)."""
    started_at: datetime | None = None
    context: dict[str, Any] = field(default_factory=dict)
    """Its size: `messages` in the history, `appended` (new), `window`, `tools`."""
    model: str = ""
    decision: str = "pending"
    """`tool_calls`, `answer`, `failed` (the model could not decide) or `pending`."""
    answer: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model_latency_ms: float = 0.0
    decided_at: datetime | None = None
    calls: list[ToolCallDetail] = field(default_factory=list)
    ended_at: datetime | None = None
    """When its last event was recorded (the decision, or its last tool result)."""

    @property
    def duration_s(self) -> float | None:
        """From its context to its last event."""
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())


def steps_of(entries: Sequence[Recorded], costs: Mapping[uuid.UUID, float]) -> list[StepDetail]:
    """The steps of a run's timeline, in order; `costs` is each decision's cost by event id."""
    steps: dict[int, StepDetail] = {}
    for entry in entries:
        if entry.seq < 1:
            continue  # the goal, and anything before the first context
        step = steps.setdefault(entry.seq, StepDetail(seq=entry.seq))
        _fold(step, entry, costs)
        if entry.type != "ContextAssembled":
            step.ended_at = max(step.ended_at or entry.occurred_at, entry.occurred_at)
    return [steps[seq] for seq in sorted(steps)]


def _fold(step: StepDetail, entry: Recorded, costs: Mapping[uuid.UUID, float]) -> None:
    p = entry.payload
    if entry.type == "ContextAssembled":
        step.purpose = p.get("purpose", "step")
        step.started_at = entry.occurred_at
        step.context = {k: p.get(k) for k in ("messages", "appended", "window", "tools")}
    elif entry.type == "ModelDecided":
        usage = p.get("usage", {})
        step.model = p.get("model", "")
        step.prompt_tokens = usage.get("prompt_tokens", 0)
        step.completion_tokens = usage.get("completion_tokens", 0)
        step.model_latency_ms = p.get("latency_ms", 0.0)
        step.cost_usd = costs.get(entry.event_id, 0.0) if entry.event_id else 0.0
        step.decided_at = entry.occurred_at
        if p.get("final_answer") is not None:
            step.decision, step.answer = "answer", p["final_answer"]
        else:
            step.decision = "tool_calls"
            step.calls = [
                ToolCallDetail(c["call_id"], c["tool"], c.get("arguments", {}))
                for c in p.get("tool_calls", [])
            ]
    elif entry.type == "ModelFailed":
        step.model, step.decision, step.error = p.get("model", ""), "failed", p.get("error")
        step.decided_at = entry.occurred_at
    elif entry.type in ("ToolCallSucceeded", "ToolCallFailed"):
        _result(step, entry)


def _result(step: StepDetail, entry: Recorded) -> None:
    p = entry.payload
    if entry.type == "ToolCallSucceeded":
        text = p.get("output", "")
        artifact = p.get("artifact")
        if artifact and not text:
            text = f"(stored as {artifact['ref']}, {artifact['chars']} characters)"
        chars = artifact["chars"] if artifact else len(text)
        outcome, kind = "succeeded", None
    else:
        error = p.get("error", {})
        text, chars, outcome, kind = error.get("message", ""), 0, "failed", error.get("kind")
    done = {
        "outcome": outcome,
        "output": text[:OUTPUT_CHARS],
        "output_chars": chars or len(text),
        "error_kind": kind,
        "attempts": p.get("attempts", 1),
        "duration_ms": p.get("duration_ms", 0.0),
        "finished_at": entry.occurred_at,
    }
    for i, call in enumerate(step.calls):
        if call.call_id == p.get("call_id"):
            step.calls[i] = ToolCallDetail(call.call_id, call.tool, call.arguments, **done)
            return
    # A result memory answered itself (remember/recall) or of a call not in the decision.
    step.calls.append(ToolCallDetail(p.get("call_id", "?"), p.get("tool", "?"), {}, **done))
