"""`loopline dlq ls|show`: the dead letters recovery accounted for."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import asyncpg
import click
from loopline_runtime import load_endpoints, schema_name

from loopline.cli._render import short


async def _query(sql: str, *args: Any) -> list[asyncpg.Record]:
    endpoints = load_endpoints()
    schema = schema_name("recovery", endpoints.kafka.topic_prefix)
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        return list(await conn.fetch(sql.replace("{schema}", f'"{schema}"'), *args))
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()


@click.group()
def dlq() -> None:
    """Dead letters: messages a service could not handle, with the reason."""


@dlq.command("ls")
@click.option("--run", "run_id", default=None, help="Only this run's dead letters.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def ls(run_id: str | None, limit: int, as_json: bool) -> None:
    """The latest dead letters, newest first."""
    rows = asyncio.run(
        _query(
            "SELECT event_id, run_id, source_topic, consumer_group, kind, error, status, "
            "occurred_at FROM {schema}.dead_letters WHERE ($1::text IS NULL OR run_id = $1) "
            "ORDER BY occurred_at DESC LIMIT $2",
            run_id,
            limit,
        )
    )
    if as_json:
        click.echo(json.dumps([dict(r) for r in rows], default=str, indent=2))
        return
    if not rows:
        click.echo("no dead letters")
    for r in rows:
        click.echo(
            f"{str(r['event_id'])[:8]} {r['source_topic']:<22} {r['kind']:<15} {r['status']:<7} "
            f"run {short(r['run_id'], 36):<36} {short(r['error'], 70)}"
        )


@dlq.command("show")
@click.argument("event_id")
def show(event_id: str) -> None:
    """One dead letter in full, its original bytes included (base64)."""
    rows = asyncio.run(
        _query("SELECT * FROM {schema}.dead_letters WHERE event_id::text LIKE $1 || '%'", event_id)
    )
    if len(rows) != 1:
        click.echo(f"{len(rows)} dead letters match {event_id!r}", err=True)
        sys.exit(1)
    click.echo(json.dumps(dict(rows[0]), default=_jsonable, indent=2))


def _jsonable(value: Any) -> str:
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    return str(value)
