"""One line per event, for people."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click
from loopline_events import (
    ContextAssembled,
    Envelope,
    GoalSubmitted,
    ModelCallDelayed,
    ModelDecided,
    ModelFailed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    TextChunk,
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
        return "context", f"{len(p.messages)} messages, {len(p.tools)} tools, model {p.model}"
    if isinstance(p, ModelDecided):
        tokens = f"[{p.usage.prompt_tokens}+{p.usage.completion_tokens} tokens]"
        if p.usage.cached_tokens:
            tokens = f"[{p.usage.prompt_tokens}+{p.usage.completion_tokens} tokens, "
            tokens += f"{p.usage.cached_tokens} cached]"
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
    if isinstance(p, RunCompleted):
        return "completed", f"{short(p.answer)!r} ({p.steps} steps, {p.usage.total_tokens} tokens)"
    if isinstance(p, RunFailed):
        return "failed", f"{p.reason.value}: {short(p.message)} ({p.steps} steps)"
    if isinstance(p, RunCancelled):
        return "cancelled", short(p.reason) or "(no reason given)"
    return event.type, ""


def _by(decision: ModelDecided) -> str:
    """Which model decided, when it was a fallback."""
    if decision.fallback_from is None:
        return ""
    return f" (by {decision.model}: {decision.fallback_from} was unavailable)"


class TextLine:
    """Prints a step's text as it comes, on its own line, and ends the line when anything
    else is printed."""

    def __init__(self, *, show_run: bool = False):
        self.show_run = show_run
        self._open: tuple[str, int] | None = None

    def text(self, chunk: TextChunk, *, as_json: bool) -> None:
        """Print `chunk` (for people: appended to its step's line)."""
        if as_json:
            click.echo(json.dumps({"type": "TextChunk", **dataclasses.asdict(chunk)}))
            return
        if self._open != (chunk.run_id, chunk.step):
            self.end()
            run = f"{chunk.run_id[:8]} " if self.show_run else ""
            label = click.style(f"{'writing':<10}", fg="cyan")
            click.echo(f"{run}step {chunk.step:<3} {label} ", nl=False)
            self._open = (chunk.run_id, chunk.step)
        elif chunk.rewrite:
            click.echo(click.style(" ↺ (the call was retried) ", fg="yellow"), nl=False)
        click.echo(chunk.text, nl=False)

    def end(self) -> None:
        """End the open line, if any."""
        if self._open is not None:
            click.echo()
            self._open = None

    def event(self, event: Envelope[Any], *, as_json: bool) -> None:
        """Print an event on a line of its own."""
        self.end()
        echo_event(event, as_json=as_json, show_run=self.show_run)


def echo_event(event: Envelope[Any], *, as_json: bool, show_run: bool = False) -> None:
    """Print an event as a line of JSON or for people."""
    if as_json:
        click.echo(event.model_dump_json())
        return
    label, text = describe(event)
    colour = {
        "failed": "red",
        "tool-err": "yellow",
        "model-err": "red",
        "completed": "green",
        "waiting": "yellow",
    }
    run = f"{event.run_id[:8]} " if show_run else ""
    step = f"step {event.seq:<3}"
    click.echo(f"{run}{step} {click.style(f'{label:<10}', fg=colour.get(label))} {text}")
