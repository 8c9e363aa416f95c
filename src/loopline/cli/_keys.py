"""`loopline keys create|ls|revoke`: the gateway's API keys."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from loopline_runtime import load_endpoints

from loopline.gateway import KeyStore, Role
from loopline.gateway._keys import KeyInfo, KeyRefusedError
from loopline.gateway.main import open_keys

T = TypeVar("T")


@click.group()
def keys() -> None:
    """API keys of the gateway: each bound to one tenant, with a role (user or operator)."""


async def _with_keys(act: Callable[[KeyStore], Awaitable[T]]) -> T:
    store, close = await open_keys(load_endpoints())
    try:
        return await act(store)
    finally:
        await close()


@keys.command("create")
@click.option("--tenant", required=True, help="The tenant the key acts as (and sees).")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.USER.value,
    show_default=True,
    help="user: its tenant's runs; operator: every tenant's runs, dead letters and redrives.",
)
@click.option("--name", default="", help="A label to recognise the key by.")
@click.option("--json", "as_json", is_flag=True)
def create(tenant: str, role: str, name: str, as_json: bool) -> None:
    """Create a key and print it: it is shown this once, and stored only hashed."""

    async def act(store: KeyStore) -> tuple[str, str]:
        return await store.create(tenant, Role(role), name)

    try:
        key_id, key = asyncio.run(_with_keys(act))
    except KeyRefusedError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from None
    if as_json:
        click.echo(json.dumps({"key_id": key_id, "tenant": tenant, "role": role, "key": key}))
        return
    click.echo(f"key {key_id} for tenant {tenant!r} ({role}); shown once, keep it safe:")
    click.echo(key)


@keys.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """Every key: id, tenant, role, when created or revoked (never the key itself)."""

    async def act(store: KeyStore) -> list[KeyInfo]:
        return await store.list()

    found = asyncio.run(_with_keys(act))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(k) for k in found], default=str, indent=2))
        return
    if not found:
        click.echo("no keys")
    for k in found:
        revoked = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        click.echo(f"{k.key_id}  {k.tenant:<20} {k.role.value:<9} {revoked:<24} {k.name}")


@keys.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke a key (gateways stop trusting it within LOOPLINE_GATEWAY_KEY_CACHE_S). Exit 1 if
    no active key has this id."""

    async def act(store: KeyStore) -> bool:
        return await store.revoke(key_id)

    if not asyncio.run(_with_keys(act)):
        click.echo(f"no active key {key_id}", err=True)
        sys.exit(1)
    click.echo(f"key {key_id} revoked")
