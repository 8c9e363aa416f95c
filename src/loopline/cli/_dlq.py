"""`loopline dlq ls|show|redrive`: the dead letters recovery accounted for, and asking
recovery to re-drive the parked ones to their source topics (recovery's dead-letter API)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time

import click
from loopline_bus import KafkaBus
from loopline_recovery import dead_letters
from loopline_runtime import load_endpoints, load_signing

from loopline.cli._db import recovery_reads
from loopline.cli._render import short

REDRIVE_WAIT_S = 30.0
"""How long `redrive` waits for recovery to report the letters redriven."""


@click.group()
def dlq() -> None:
    """Dead letters: messages a service could not handle, with the reason."""


@dlq.command("ls")
@click.option("--run", "run_id", default=None, help="Only this run's dead letters.")
@click.option(
    "--status", type=click.Choice(dead_letters.STATUSES), default=None, help="Only these."
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def ls(run_id: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """The latest dead letters, newest first."""
    rows = asyncio.run(
        recovery_reads(
            lambda c, s: dead_letters.list_dead_letters(
                c, s, run_id=run_id, status=status, limit=limit
            )
        )
    )
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in rows], default=str, indent=2))
        return
    if not rows:
        click.echo("no dead letters")
    for r in rows:
        click.echo(
            f"{str(r.event_id)[:8]} {r.source_topic:<22} {r.category or r.kind:<10} "
            f"{r.status:<9} run {short(r.run_id, 36):<36} {short(r.error, 70)}"
        )


@dlq.command("show")
@click.argument("event_id")
def show(event_id: str) -> None:
    """One dead letter in full, its original bytes included (base64). Exit 1 unless EVENT_ID
    (or a prefix of it) names exactly one."""
    found = asyncio.run(recovery_reads(lambda c, s: dead_letters.find(c, s, event_id)))
    if len(found) != 1:
        click.echo(f"{len(found)} dead letters match {event_id!r}", err=True)
        sys.exit(1)
    click.echo(json.dumps(found[0].as_json(), indent=2))


@dlq.command("redrive")
@click.argument("event_id", required=False)
@click.option("--run", "run_id", default=None, help="Every parked dead letter of this run.")
def redrive(event_id: str | None, run_id: str | None) -> None:
    """Ask recovery to re-publish parked dead letters, original bytes, key and headers, to
    their source topics, and wait until it has.

    Use it once the cause is fixed (a service that knows the schema is deployed, a bug fixed).
    Each gets a fresh retry budget and is marked `redriven`. Exit 1 when none was parked, 3
    when recovery did not carry the redrive out within 30 s (is it running?).
    """
    if (event_id is None) == (run_id is None):
        click.echo("give one EVENT_ID (or a prefix of it), or --run RUN_ID", err=True)
        sys.exit(2)
    asked, done = asyncio.run(_redrive(event_id, run_id))
    click.echo(f"{done} dead letter(s) redriven")
    if asked == 0:
        sys.exit(1)
    if done < asked:
        click.echo(f"{asked - done} not redriven yet: is recovery running?", err=True)
        sys.exit(3)


async def _redrive(event_id: str | None, run_id: str | None) -> tuple[int, int]:
    """How many parked letters were asked for, and how many recovery then redrove."""
    letters = await recovery_reads(
        lambda c, s: dead_letters.parked(c, s, id_or_prefix=event_id, run_id=run_id)
    )
    if not letters:
        return 0, 0
    bus = KafkaBus(
        settings=load_endpoints().kafka,
        client_id="loopline-dlq",
        signing_key=load_signing().signing_key(),
    )
    await bus.start()
    try:
        await dead_letters.request_redrive(bus, letters, requested_by="cli")
    finally:
        await bus.stop()
    wanted = [d.event_id for d in letters]
    deadline = time.monotonic() + REDRIVE_WAIT_S
    while True:
        # PostgreSQL cannot be awaited: recovery's ledger is polled until it says so.
        now = await recovery_reads(lambda c, s: dead_letters.statuses(c, s, wanted))
        done = sum(1 for status in now.values() if status == "redriven")
        if done == len(wanted) or time.monotonic() > deadline:
            return len(wanted), done
        await asyncio.sleep(0.2)
