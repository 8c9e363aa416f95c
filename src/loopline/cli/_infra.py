"""`loopline infra up|down|status`: the development infrastructure."""

from __future__ import annotations

import asyncio
import json
import sys

import click
from loopline_infra import ComponentStatus, Infra, InfraError


def _print_status(statuses: list[ComponentStatus], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({s.name: s.as_dict() for s in statuses}, indent=2))
        return
    for s in statuses:
        pid = f"pid {s.pid}" if s.pid else ""
        click.echo(f"{s.name:<10} {s.state:<8} {s.endpoint:<50} {pid}")


@click.group()
def infra() -> None:
    """Run a local Kafka (KRaft), Redis, PostgreSQL and Prometheus on the project's own ports."""


@infra.command()
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
def up(as_json: bool) -> None:
    """Start what is not running and wait until each component answers."""
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        statuses = asyncio.run(Infra().up(say=say))
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    _print_status(statuses, as_json)
    if not as_json:
        click.echo("\nPoint Loopline (and your own clients) at them with:")
        for name, value in Infra().env().items():
            click.echo(f"  export {name}={value}")


@infra.command()
@click.option("--wipe", is_flag=True, help="Delete the components' data as well.")
def down(wipe: bool) -> None:
    """Stop what `infra up` started; keep the data unless --wipe."""
    try:
        Infra().down(wipe=wipe, say=click.echo)
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@infra.command()
@click.option("--json", "as_json", is_flag=True, help="Print each component as JSON.")
def status(as_json: bool) -> None:
    """Each component's endpoint and state; exit 1 unless all are ready."""
    statuses = asyncio.run(Infra().status())
    _print_status(statuses, as_json)
    sys.exit(0 if all(s.state == "ready" for s in statuses) else 1)
