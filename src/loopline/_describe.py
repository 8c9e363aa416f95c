"""One line per event, for people: the CLI prints it, the gateway's page shows it."""

from __future__ import annotations

import json
from typing import Any

from loopline_events import (
    ApprovalDecided,
    ApprovalRequested,
    ContextAssembled,
    DelegationStarted,
    Envelope,
    GoalRejected,
    GoalSubmitted,
    ModelCallDelayed,
    ModelDecided,
    ModelFailed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunSteered,
    ToolCallApproved,
    ToolCallFailed,
    ToolCallSucceeded,
)

MAX_TEXT = 120


def short(text: str, limit: int = MAX_TEXT) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _signer(event: Envelope[Any]) -> str:
    return event.signature.key_id if event.signature is not None else "someone"


def describe(event: Envelope[Any]) -> tuple[str, str]:
    """A label and a one-line description of an event."""
    p = event.payload
    if isinstance(p, GoalSubmitted):
        parent = f", a sub-task of {p.parent.parent_run_id}" if p.parent else ""
        return "goal", f"{short(p.goal)!r} (agent {p.agent}{parent})"
    if isinstance(p, DelegationStarted):
        return "sub-task", f"{p.agent} as run {p.child_run_id}, until {p.until:%H:%M:%S} UTC"
    if isinstance(p, ContextAssembled):
        shown = "all shown" if p.window is None else "a window of them shown"
        label = "context" if p.purpose == "step" else "summarize"
        return label, (
            f"{p.length} messages (+{len(p.appended)}), {shown}, {len(p.tools)} tools, "
            f"model {p.model}"
        )
    if isinstance(p, ModelDecided):
        cached = f", {p.usage.cached_tokens} cached" if p.usage.cached_tokens else ""
        tokens = f"[{p.usage.prompt_tokens}+{p.usage.completion_tokens} tokens{cached}]"
        if p.final_answer is not None:
            return "decision", f"answer {short(p.final_answer)!r} {tokens}{_by(p)}"
        calls = ", ".join(f"{c.tool}({short(json.dumps(c.arguments), 60)})" for c in p.tool_calls)
        return "decision", f"{calls} {tokens}{_by(p)}"
    if isinstance(p, ModelFailed):
        return "model-err", short(p.error)
    if isinstance(p, ModelCallDelayed):
        return "waiting", f"{p.model}: {p.reason.value}, until {p.until:%H:%M:%S} UTC"
    if isinstance(p, ToolCallSucceeded):
        return "tool", f"{p.tool} → {short(p.output, 80)!r}"
    if isinstance(p, ToolCallFailed):
        return "tool-err", f"{p.tool}: {p.error.kind.value}: {short(p.error.message, 100)}"
    if isinstance(p, ApprovalRequested):
        return "held", (
            f"{p.tool}({short(json.dumps(p.arguments), 60)}) waits for approval until "
            f"{p.until:%H:%M:%S} UTC, then {p.on_timeout} (call {p.call_id})"
        )
    if isinstance(p, ApprovalDecided):
        verb = "approved" if p.approved else "denied"
        edited = " with edited arguments" if p.arguments is not None else ""
        why = f": {short(p.reason, 80)}" if p.reason else ""
        return verb, f"call {p.call_id}{edited} by {p.decided_by or _signer(event)}{why}"
    if isinstance(p, ToolCallApproved):
        return "approved", f"{p.call.tool}({short(json.dumps(p.call.arguments), 60)}) runs now"
    if isinstance(p, RunSteered):
        return "told", f"{short(p.message, 100)!r} by {p.sent_by or _signer(event)}"
    if isinstance(p, RunCompleted):
        return "completed", f"{short(p.answer)!r} ({p.steps} steps, {p.usage.total_tokens} tokens)"
    if isinstance(p, RunFailed):
        return "failed", f"{p.reason.value}: {short(p.message)} ({p.steps} steps)"
    if isinstance(p, RunCancelled):
        return "cancelled", short(p.reason) or "(no reason given)"
    if isinstance(p, GoalRejected):
        return "rejected", f"{p.reason.value}: {short(p.message)}"
    return event.type, ""


def _by(decision: ModelDecided) -> str:
    """Which model decided, when it was a fallback."""
    if decision.fallback_from is None:
        return ""
    return f" (by {decision.model}: {decision.fallback_from} was unavailable)"
