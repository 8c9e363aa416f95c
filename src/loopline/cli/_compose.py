"""`loopline infra compose-secrets` and `loopline infra provision`: docker compose's secrets,
and its servers' users (docs/decisions/0024)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click
from loopline_infra import (
    InfraError,
    default_paths,
    provision_servers,
    write_compose_secrets,
)
from loopline_runtime import local_credentials


@click.command("compose-secrets")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write them (default: the home's `compose` folder, which "
    "docker-compose.yml reads).",
)
def compose_secrets(folder: Path | None) -> None:
    """Make the secrets `docker compose up` runs with: every principal's credentials (the
    same as `infra up` makes, for the servers of the compose network), each container's env
    file, the Redis users; files mode 0600, kept from one call to the next."""
    target = folder or default_paths().home / "compose"
    for path in write_compose_secrets(target):
        click.echo(f"wrote {path}")
    click.echo(
        f"Kafka for this host's clients: `set -a; . {target}/operator.env; set +a` "
        "(client-default.env: a tenant's client)"
    )


@click.command("provision")
def provision() -> None:
    """Give servers Loopline did not start (docker compose's) the users, roles, ACLs and
    topics of the credentials file (LOOPLINE_CREDENTIALS_FILE), as their administrators; the
    namespace is LOOPLINE_KAFKA_TOPIC_PREFIX."""
    credentials = local_credentials()
    if credentials is None:
        click.echo("error: no credentials file (LOOPLINE_CREDENTIALS_FILE)", err=True)
        sys.exit(2)
    namespace = os.environ.get("LOOPLINE_KAFKA_TOPIC_PREFIX", "")
    try:
        asyncio.run(provision_servers(credentials, namespace))
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"users, roles, ACLs and topics of namespace {namespace!r} in place")
