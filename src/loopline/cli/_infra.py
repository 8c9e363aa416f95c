"""`loopline infra up|down|status`: the development infrastructure."""

from __future__ import annotations

import asyncio
import json
import sys

import click
from loopline_infra import BROKER_CHOICES, ComponentStatus, Infra, InfraError

from loopline.cli._access import acls, credentials
from loopline.cli._compose import compose_secrets, provision
from loopline.cli._topics import topics


def _print_status(statuses: list[ComponentStatus], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({s.name: s.as_dict() for s in statuses}, indent=2))
        return
    for s in statuses:
        pid = f"pid {s.pid}" if s.pid else ""
        click.echo(f"{s.name:<10} {s.state:<8} {s.endpoint:<50} {pid:<10} {s.role}".rstrip())


def _infra(brokers: int | None = None) -> Infra:
    try:
        return Infra(brokers=brokers)
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group()
def infra() -> None:
    """Run a local Kafka (KRaft), Redis, PostgreSQL and Prometheus on the project's own ports;
    check and repair Loopline's topics on any cluster."""


infra.add_command(topics)
infra.add_command(credentials)
infra.add_command(acls)
infra.add_command(compose_secrets)
infra.add_command(provision)


@infra.command()
@click.option(
    "--brokers",
    type=click.Choice([str(n) for n in BROKER_CHOICES]),
    default=None,
    help="One Kafka node, or a local cluster of three (every node a broker and a controller, "
    "on the next ports: 19094/19095, 19096/19097). Default: what the last `up` ran, else 1.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
def up(brokers: str | None, as_json: bool) -> None:
    """Start what is not running and wait until each component answers."""
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    infra = _infra(int(brokers) if brokers else None)
    try:
        statuses = asyncio.run(infra.up(say=say))
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    _print_status(statuses, as_json)
    if not as_json:
        click.echo(
            f"\nEvery server asks for credentials: each principal's are in {infra.store.path} "
            "(mode 0600).\nThe CLI and the SDK use the operator's; "
            "`loopline infra credentials --env` prints its variables for other programs."
        )


@infra.command()
@click.option("--wipe", is_flag=True, help="Delete the components' data as well.")
def down(wipe: bool) -> None:
    """Stop what `infra up` started; keep the data unless --wipe."""
    try:
        _infra().down(wipe=wipe, say=click.echo)
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@infra.command()
@click.option("--json", "as_json", is_flag=True, help="Print each component as JSON.")
def status(as_json: bool) -> None:
    """Each component's endpoint and state (each broker of a cluster, and which one is the
    active controller); exit 1 unless all are ready."""
    statuses = asyncio.run(_infra().status())
    _print_status(statuses, as_json)
    sys.exit(0 if all(s.state == "ready" for s in statuses) else 1)
