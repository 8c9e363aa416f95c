"""One line per event, for people: the CLI prints it, the gateway's page shows it."""

from __future__ import annotations

import json
from typing import Any

from loopline_events import (
    ContextAssembled,
    Envelope,
    GoalRejected,
    GoalSubmitted,
    ModelDecided,
    ModelFailed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    ToolCallFailed,
    ToolCallSucceeded,
)

MAX_TEXT = 120


def short(text: str, limit: int = MAX_TEXT) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe(event: Envelope[Any]) -> tuple[str, str]:
    """A label and a one-line description of an event."""
    p = event.payload
    if isinstance(p, GoalSubmitted):
        return "goal", f"{short(p.goal)!r} (agent {p.agent})"
    if isinstance(p, ContextAssembled):
        shown = "all shown" if p.window is None else "a window of them shown"
        label = "context" if p.purpose == "step" else "summarize"
        return label, (
            f"{p.length} messages (+{len(p.appended)}), {shown}, {len(p.tools)} tools, "
            f"model {p.model}"
        )
    if isinstance(p, ModelDecided):
        tokens = f"[{p.usage.prompt_tokens}+{p.usage.completion_tokens} tokens]"
        if p.final_answer is not None:
            return "decision", f"answer {short(p.final_answer)!r} {tokens}"
        calls = ", ".join(f"{c.tool}({short(json.dumps(c.arguments), 60)})" for c in p.tool_calls)
        return "decision", f"{calls} {tokens}"
    if isinstance(p, ModelFailed):
        return "model-err", short(p.error)
    if isinstance(p, ToolCallSucceeded):
        return "tool", f"{p.tool} → {short(p.output, 80)!r}"
    if isinstance(p, ToolCallFailed):
        return "tool-err", f"{p.tool}: {p.error.kind.value}: {short(p.error.message, 100)}"
    if isinstance(p, RunCompleted):
        return "completed", f"{short(p.answer)!r} ({p.steps} steps, {p.usage.total_tokens} tokens)"
    if isinstance(p, RunFailed):
        return "failed", f"{p.reason.value}: {short(p.message)} ({p.steps} steps)"
    if isinstance(p, RunCancelled):
        return "cancelled", short(p.reason) or "(no reason given)"
    if isinstance(p, GoalRejected):
        return "rejected", f"{p.reason.value}: {short(p.message)}"
    return event.type, ""
