"""`loopline submit | tail | runs | show | cancel`: what a user touches."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys

import asyncpg
import click
from loopline_events import Budget, ModelTextDelta, RunCompleted, StreamedText, TextChunk
from loopline_memory import reads
from loopline_runtime import ProfileError, load_endpoints, load_profiles

from loopline.cli._db import memory_reads
from loopline.cli._render import TextLine, short
from loopline.sdk import FOLLOWED_TOPICS, EventStream, Loopline

EXIT_FAILED = 1
EXIT_TIMEOUT = 3


@click.command()
@click.argument("goal")
@click.option("--agent", default="default", show_default=True, help="Agent profile to run.")
@click.option("--tenant", default="default", show_default=True, help="Owner of the run.")
@click.option("--run-id", default=None, help="Choose the run id (default: a new UUID).")
@click.option("--max-steps", type=int, default=None, help="Override the profile's step limit.")
@click.option(
    "--wait", is_flag=True, help="Show the steps and the model's text live; print the answer."
)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="With --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
def submit(
    goal: str,
    agent: str,
    tenant: str,
    run_id: str | None,
    max_steps: int | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Submit GOAL to an agent. With --wait: exit 0 if it completed, 1 if not, 3 on timeout."""
    try:
        profiles = load_profiles()
    except ProfileError as exc:
        raise click.UsageError(str(exc)) from None
    if agent not in profiles:
        known = ", ".join(sorted(profiles))
        raise click.BadParameter(f"unknown agent {agent!r} (known: {known})", param_hint="--agent")
    sys.exit(asyncio.run(_submit(goal, agent, tenant, run_id, max_steps, wait, timeout, as_json)))


async def _submit(
    goal: str,
    agent: str,
    tenant: str,
    run_id: str | None,
    max_steps: int | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> int:
    endpoints = load_endpoints()
    async with Loopline(endpoints.kafka, producer="cli") as client:
        run = await client.submit(
            goal, agent=agent, tenant=tenant, run_id=run_id, budget=Budget(max_steps=max_steps)
        )
        if as_json:
            click.echo(json.dumps({"run_id": run.run_id, "submitted": True}))
        else:
            click.echo(f"run {run.run_id} submitted to agent {agent!r}")
        if not wait:
            return 0
        line = TextLine()
        try:
            async with asyncio.timeout(timeout):
                async for item in run.follow():
                    if isinstance(item, TextChunk):
                        line.text(item, as_json=as_json)
                    else:
                        line.event(item, as_json=as_json)
        except TimeoutError:
            line.end()
            click.echo(f"no result after {timeout:.0f}s (the run goes on)", err=True)
            return EXIT_TIMEOUT
    outcome = run.outcome
    assert outcome is not None
    if isinstance(outcome.payload, RunCompleted):
        if not as_json:
            click.echo(f"\n{outcome.payload.answer}")
        return 0
    return EXIT_FAILED


@click.command()
@click.argument("run_id", required=False)
@click.option("--from-beginning", is_flag=True, help="Start at the oldest retained event.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
def tail(run_id: str | None, from_beginning: bool, as_json: bool) -> None:
    """Follow the events of every run (or of RUN_ID), and the text their models write, as they
    happen. Ctrl-C stops."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(run_id, from_beginning, as_json))


async def _tail(run_id: str | None, from_beginning: bool, as_json: bool) -> None:
    stream = EventStream(load_endpoints().kafka, FOLLOWED_TOPICS)
    await stream.start(run_id, from_beginning=from_beginning)
    text, line = StreamedText(), TextLine(show_run=run_id is None)
    try:
        async for event in stream.events(run_id):
            if isinstance(event.payload, ModelTextDelta):
                chunk = text.add(event)
                if chunk is not None:
                    line.text(chunk, as_json=as_json)
                continue
            line.event(event, as_json=as_json)
    finally:
        line.end()
        await stream.stop()


@click.command()
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--tenant", default=None, help="Only this tenant's runs.")
@click.option("--status", default=None, help="running, completed, failed or cancelled.")
@click.option("--json", "as_json", is_flag=True)
def runs(limit: int, tenant: str | None, status: str | None, as_json: bool) -> None:
    """The latest runs, newest first."""
    rows = asyncio.run(
        memory_reads(lambda c, s: reads.list_runs(c, s, limit=limit, tenant=tenant, status=status))
    )
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in rows], default=str, indent=2))
        return
    if not rows:
        click.echo("no runs yet")
    for r, depth in as_tree(rows):
        name = ("  " * (depth - 1) + "└ " if depth else "") + r.run_id
        click.echo(
            f"{name:<36} {r.status:<9} {r.reason or '':<16} {r.steps:>3} steps "
            f"{r.tokens:>6} tok  {r.agent:<12} {short(r.goal, 50)}"
        )


def as_tree(rows: list[reads.RunRow]) -> list[tuple[reads.RunRow, int]]:
    """The runs in their order, each sub-task under its parent when the list holds both; with
    how deep it lies under the first of them listed."""
    listed = {r.run_id for r in rows}
    children: dict[str, list[reads.RunRow]] = {}
    for r in rows:
        if r.parent_run_id in listed:
            children.setdefault(r.parent_run_id, []).append(r)
    ordered: list[tuple[reads.RunRow, int]] = []

    def place(row: reads.RunRow, depth: int) -> None:
        ordered.append((row, depth))
        for child in children.get(row.run_id, ()):
            place(child, depth + 1)

    for r in rows:
        if r.parent_run_id not in listed:
            place(r, 0)
    return ordered


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, as_json: bool) -> None:
    """RUN_ID: its limits, then every event memory recorded, in order. Exit 1 if unknown."""

    async def read(
        conn: asyncpg.Connection, schema: str
    ) -> tuple[reads.RunSummary | None, list[reads.TimelineEntry], list[reads.TreeSpend]]:
        return (
            await reads.summary(conn, schema, run_id),
            await reads.timeline(conn, schema, run_id),
            await reads.spend_tree(conn, schema, run_id),
        )

    head, rows, tree = asyncio.run(memory_reads(read))
    if head is None and not rows:
        click.echo(f"no run {run_id}", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        shown = {
            "run": dataclasses.asdict(head) if head else None,
            "spend": [dataclasses.asdict(t) for t in tree],
            "events": [dataclasses.asdict(r) for r in rows],
        }
        click.echo(json.dumps(shown, default=str, indent=2))
        return
    if head is not None:
        r, limits = head.row, head.limits
        click.echo(
            f"{r.run_id}  {r.status} {r.reason or ''}  agent {r.agent}  tenant {r.tenant}\n"
            f"limits: {limits['max_steps']} steps, deadline {limits['deadline_at'] or 'none'}, "
            f"tokens {limits['max_tokens'] or 'unlimited'}, "
            f"cost {limits['max_cost_usd'] if limits['max_cost_usd'] is not None else 'unlimited'}"
        )
        for cap in head.capped:
            click.echo(f"capped: {cap}")
        if r.parent_run_id:
            click.echo(f"sub-task of {r.parent_run_id}")
        for child in head.children:
            state = "ended" if child.get("ended") else "running"
            click.echo(
                f"sub-task {child['run_id']}  agent {child['agent']}  step {child['step']}  {state}"
            )
        if len(tree) > 1:
            click.echo("spent (usage ledger, each run's own model calls):")
            for t in tree:
                click.echo(
                    f"  {'  ' * t.depth}{t.run_id}  {t.agent}  "
                    f"{t.prompt_tokens + t.completion_tokens} tokens  ${t.cost_usd:.6f}"
                )
    if not rows:
        return
    started = rows[0].occurred_at
    for e in rows:
        offset = (e.occurred_at - started).total_seconds()
        click.echo(
            f"+{offset:8.3f}s step {e.seq:<3} {e.type:<18} {e.producer:<14} "
            f"{short(json.dumps(e.payload), 90)}"
        )


@click.command()
@click.argument("run_id")
@click.option("--reason", default="", help="Why (recorded on the run).")
def cancel(run_id: str, reason: str) -> None:
    """Ask RUN_ID to stop at its next step."""

    async def _cancel() -> None:
        async with Loopline(load_endpoints().kafka, producer="cli") as client:
            await client.cancel(run_id, reason=reason)

    asyncio.run(_cancel())
    click.echo(f"cancel requested for {run_id}")
