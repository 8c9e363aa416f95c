"""`loopline infra credentials|acls` and `loopline tenants create|ls`: who may do what on
this machine's Loopline, and what a cluster of one's own must grant."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from typing import Any

import click
from loopline_infra import (
    DEFAULT_TENANT,
    OPERATOR,
    CredentialStore,
    InfraError,
    check_tenant,
    client_principal,
    default_paths,
    grant_tenant,
    namespace_acls,
    tenants_of,
)
from loopline_runtime import Credentials


def _store() -> tuple[CredentialStore, Credentials]:
    store = CredentialStore(default_paths())
    credentials = store.load()
    if credentials is None:
        click.echo(
            f"error: no credentials file at {store.path}: `loopline infra up` makes it", err=True
        )
        sys.exit(2)
    return store, credentials


@click.command()
@click.argument("principal", default=OPERATOR)
@click.option("--env", "as_env", is_flag=True, help="Print its variables as `export` lines.")
@click.option(
    "--kcat",
    is_flag=True,
    help="Print kcat's options that connect as it: kcat $(loopline infra credentials --kcat) …",
)
@click.option("--json", "as_json", is_flag=True, help="List the principals as JSON.")
def credentials(principal: str, as_env: bool, kcat: bool, as_json: bool) -> None:
    """The principals `loopline infra up` made and what each logs in as; with --env or
    --kcat, the secrets of PRINCIPAL (operator, memory, planner, tool-executor, recovery,
    gateway, client-TENANT; the operator by default). They are in the credentials file of
    LOOPLINE_HOME (mode 0600); the CLI and the SDK use the operator's when no variable names
    another."""
    store, found = _store()
    if as_env or kcat:
        try:
            if kcat:
                click.echo(shlex.join(found.kcat_args(principal)))
            else:
                for name, value in store.process_env(principal).items():
                    click.echo(f"export {name}={shlex.quote(value)}")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="PRINCIPAL") from None
        return
    rows: list[dict[str, Any]] = [
        {
            "principal": name,
            "kafka_user": p.kafka.username,
            "postgres_role": p.postgres.role if p.postgres else None,
            "redis_user": p.redis.user if p.redis else None,
            "signs_for": list(p.acts_for),
        }
        for name, p in sorted(found.principals.items())
    ]
    if as_json:
        click.echo(json.dumps({"file": str(store.path), "principals": rows}, indent=2))
        return
    e = found.endpoints
    click.echo(f"credentials: {store.path} (mode 0600)")
    click.echo(
        f"kafka: {e.kafka_bootstrap} ({e.kafka_security_protocol}, {e.kafka_sasl_mechanism})"
    )
    for row in rows:
        click.echo(
            f"  {row['principal']:<16} postgres {row['postgres_role'] or '-':<20} "
            f"redis {row['redis_user'] or '-':<14} signs for {','.join(row['signs_for']) or '-'}"
        )


@click.command()
@click.option(
    "--namespace",
    envvar="LOOPLINE_KAFKA_TOPIC_PREFIX",
    default="",
    show_default="LOOPLINE_KAFKA_TOPIC_PREFIX",
    help="The topic prefix whose bindings to print.",
)
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    default=[DEFAULT_TENANT],
    show_default=True,
    help="A tenant with a client principal (again for more).",
)
def acls(namespace: str, tenants: tuple[str, ...]) -> None:
    """The ACL bindings Loopline needs on a cluster, as options of Kafka's `kafka-acls.sh`
    (one binding a line): what an administrator grants on a secured cluster Loopline does not
    run itself (docs/operations.md)."""
    try:
        for tenant in tenants:
            check_tenant(tenant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from None
    for acl in namespace_acls(namespace, tenants):
        click.echo(acl.describe())


@click.group()
def tenants() -> None:
    """Tenants' client principals: `client-TENANT`, which may write goals and control commands
    and read runs' steps and results in the namespace (LOOPLINE_KAFKA_TOPIC_PREFIX)."""


@tenants.command("create")
@click.argument("tenant")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def create(tenant: str, as_json: bool) -> None:
    """Give TENANT a client principal (Kafka user, ACLs, signing key) and print how it
    connects; its credentials stay in the credentials file. Again for an existing tenant: its
    ACLs in this namespace, the same credentials."""
    try:
        check_tenant(tenant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="TENANT") from None
    store, current = _store()
    principal = client_principal(tenant)
    namespace = os.environ.get("LOOPLINE_KAFKA_TOPIC_PREFIX", "")
    found = store.ensure(current.endpoints, tenants=(*tenants_of(current), tenant))
    try:
        asyncio.run(grant_tenant(found, namespace, tenant))
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    login = found.principal(principal)
    e = found.endpoints
    if as_json:
        out = {
            "tenant": tenant,
            "principal": principal,
            "namespace": namespace,
            "kafka": {
                "bootstrap": e.kafka_bootstrap,
                "security_protocol": e.kafka_security_protocol,
                "sasl_mechanism": e.kafka_sasl_mechanism,
                "username": login.kafka.username,
                "password": login.kafka.password.get_secret_value(),
            },
            "signing_key_id": principal,
            "signing_key": login.signing_key.get_secret_value(),
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"tenant {tenant!r}: principal User:{principal} in namespace {namespace!r}")
    click.echo(
        f"  may write {namespace}agent.goals and {namespace}agent.control, read the runs' "
        f"steps and {namespace}agent.results"
    )
    click.echo(f"  its variables: loopline infra credentials --env {principal}")
    click.echo(f"  kcat:          kcat $(loopline infra credentials --kcat {principal}) …")
    click.echo(
        "  (SCRAM clients log in at once; kcat's PLAIN login once the local Kafka restarts: "
        "`loopline infra down && loopline infra up`)"
    )


@tenants.command("ls")
def ls() -> None:
    """The tenants that have a client principal."""
    _, found = _store()
    for tenant in tenants_of(found):
        click.echo(tenant)
