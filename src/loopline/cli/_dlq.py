"""`loopline dlq ls|show|redrive`: the dead letters recovery accounted for, and re-driving
the parked ones to their source topics."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

import asyncpg
import click
from loopline_bus import KafkaBus
from loopline_events import RETRIES_HEADER
from loopline_runtime import load_endpoints

from loopline.cli._db import query
from loopline.cli._render import short


async def _query(sql: str, *args: Any) -> list[asyncpg.Record]:
    return await query("recovery", sql, *args)


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
            "SELECT event_id, run_id, source_topic, consumer_group, kind, category, error, status, "
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
            f"{str(r['event_id'])[:8]} {r['source_topic']:<22} {r['category'] or r['kind']:<10} "
            f"{r['status']:<9} "
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


@dlq.command("redrive")
@click.argument("event_id", required=False)
@click.option("--run", "run_id", default=None, help="Every parked dead letter of this run.")
def redrive(event_id: str | None, run_id: str | None) -> None:
    """Re-publish parked dead letters, original bytes, key and headers, to their source topics.

    Use it once the cause is fixed (a service that knows the schema is deployed, a bug fixed).
    Each gets a fresh retry budget and is marked `redriven`.
    """
    if (event_id is None) == (run_id is None):
        click.echo("give one EVENT_ID (or a prefix of it), or --run RUN_ID", err=True)
        sys.exit(2)
    count = asyncio.run(_redrive(event_id, run_id))
    click.echo(f"{count} dead letter(s) redriven")
    if count == 0:
        sys.exit(1)


async def _redrive(event_id: str | None, run_id: str | None) -> int:
    rows = await _query(
        "SELECT event_id, source_topic, original_key, original_value, original_headers "
        "FROM {schema}.dead_letters WHERE status = 'parked' AND "
        "(($1::text IS NOT NULL AND event_id::text LIKE $1 || '%') OR run_id = $2) "
        "ORDER BY source_offset",
        event_id,
        run_id,
    )
    if not rows:
        return 0
    bus = KafkaBus(settings=load_endpoints().kafka, client_id="loopline-dlq")
    await bus.start()
    try:
        for row in rows:
            await bus.publish_raw(
                row["source_topic"],
                row["original_value"],
                key=row["original_key"],
                headers=_fresh_headers(row["original_headers"]),
            )
            # Marked after the broker acknowledged: a crash between re-drives it again at worst.
            await _query(
                "UPDATE {schema}.dead_letters SET status = 'redriven', redriven_at = now() "
                "WHERE event_id = $1",
                row["event_id"],
            )
    finally:
        await bus.stop()
    return len(rows)


def _fresh_headers(stored: str | list[list[str]]) -> list[tuple[str, bytes]]:
    """The original headers (stored base64 in JSON), without the retry count: a redrive
    starts a new budget of retries."""
    pairs = json.loads(stored) if isinstance(stored, str) else stored
    return [(k, base64.b64decode(v)) for k, v in pairs if k != RETRIES_HEADER]


def _jsonable(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
