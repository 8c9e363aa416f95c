"""One line per event, for people."""

from __future__ import annotations

from typing import Any

import click
from loopline_events import Envelope

from loopline._describe import MAX_TEXT, describe, short

__all__ = ["MAX_TEXT", "describe", "echo_event", "short"]


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
    }
    run = f"{event.run_id[:8]} " if show_run else ""
    step = f"step {event.seq:<3}"
    click.echo(f"{run}{step} {click.style(f'{label:<10}', fg=colour.get(label))} {text}")
