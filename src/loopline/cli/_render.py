"""One line per event, for people."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click
from loopline_events import Envelope, TextChunk

from loopline._describe import MAX_TEXT, describe, short

__all__ = ["MAX_TEXT", "TextLine", "describe", "echo_event", "short"]


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
        "rejected": "red",
        "tool-err": "yellow",
        "model-err": "red",
        "completed": "green",
        "waiting": "yellow",
    }
    run = f"{event.run_id[:8]} " if show_run else ""
    step = f"step {event.seq:<3}"
    click.echo(f"{run}{step} {click.style(f'{label:<10}', fg=colour.get(label))} {text}")
