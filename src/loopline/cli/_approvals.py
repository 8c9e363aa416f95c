"""`loopline approvals ls|show|approve|deny` and `loopline say`: a person in the loop of a run
(docs/decisions/0028).

Reads go through memory's read API; a decision or a message is a signed command on
agent.control, checked first against memory's projection so that one it would refuse is not
sent, and the person is told why (exit 1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
import pydantic
from loopline_events import Envelope, encode_event
from loopline_memory import reads
from loopline_runtime import load_endpoints, load_signing

from loopline.cli._db import memory_reads
from loopline.cli._render import short
from loopline.sdk import CommandRefusedError, Loopline, decided

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

T = TypeVar("T")

AS_OPTION = click.option(
    "--as",
    "principal",
    metavar="PRINCIPAL",
    default=None,
    help="Sign with this principal's key from the credentials file (client-acme, say); "
    "default: LOOPLINE_SIGNING_KEY_ID, else the local operator's.",
)


@click.group()
def approvals() -> None:
    """Tool calls held for a person's approval: list them, read one, approve or deny it.

    A call is held when its agent's profile asks for approval ([agents.NAME.approvals]); its
    run waits (not stalled) until someone decides or `until` passes.
    """


@approvals.command("ls")
@click.option("--tenant", default=None, help="Only this tenant's runs.")
@click.option("--limit", type=click.IntRange(1, 1_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print them as a JSON list.")
def ls(tenant: str | None, limit: int, as_json: bool) -> None:
    """Held calls waiting for a decision, the longest waiting first."""
    rows = asyncio.run(
        memory_reads(lambda c, s: reads.pending_approvals(c, s, tenant=tenant, limit=limit))
    )
    if as_json:
        click.echo(json.dumps([_as_json(a) for a in rows], default=str, indent=2))
        return
    if not rows:
        click.echo("no calls wait for approval")
        return
    now = datetime.now(UTC)
    for a in rows:
        click.echo(
            f"{a.run_id:<36} step {a.step:<3} {a.call_id:<24} {a.tool:<16} "
            f"{short(json.dumps(a.arguments), 40):<40} waiting {_age(now - a.requested_at):>7}  "
            f"until {a.until:%Y-%m-%d %H:%M:%S}  then {a.on_timeout}"
        )


@approvals.command("show")
@click.argument("run_id")
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, call_id: str, as_json: bool) -> None:
    """The held call CALL_ID of RUN_ID: what it asks, and whether, by whom, when and why it
    was decided. Exit 1 if it never was held."""
    found = asyncio.run(memory_reads(lambda c, s: reads.approval(c, s, run_id, call_id)))
    if found is None:
        click.echo(f"error: no held call {call_id} in run {run_id}", err=True)
        sys.exit(EXIT_REFUSED)
    if as_json:
        click.echo(json.dumps(_as_json(found), default=str, indent=2))
        return
    click.echo(
        f"run {found.run_id}  {found.run_status}  agent {found.agent}  tenant {found.tenant}\n"
        f"call {found.call_id}  step {found.step}  tool {found.tool}\n"
        f"held since {found.requested_at.isoformat()}, until {found.until.isoformat()} "
        f"(then {found.on_timeout})"
    )
    if found.policy:
        click.echo(f"policy: {found.policy}")
    if found.approvers:
        click.echo(f"approvers: {', '.join(found.approvers)} (and operators)")
    click.echo("arguments:")
    click.echo(json.dumps(found.arguments, indent=2))
    click.echo(f"status: {_status(found)}")


ALL_LIMIT = 1_000
"""Most waiting calls `--all` decides at once (the longest waiting first)."""
ALL_OPTIONS = (
    click.option(
        "--all",
        "every",
        is_flag=True,
        help="Every pending call (of --agent's runs, --tenant's), instead of RUN_ID CALL_ID.",
    ),
    click.option("--agent", default=None, help="With --all: only this agent's runs."),
    click.option("--tenant", default=None, help="With --all: only this tenant's runs."),
)


def all_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(ALL_OPTIONS):
        command = option(command)
    return command


@approvals.command("approve")
@click.argument("run_id", required=False)
@click.argument("call_id", required=False)
@all_options
@click.option(
    "--arguments",
    "arguments_json",
    metavar="JSON",
    default=None,
    help="Run the call with these arguments (a JSON object) instead of the model's.",
)
@click.option("--reason", default="", help="Why (recorded with the decision).")
@click.option("--by", "by", default="", help="Who decides, as recorded (default: the key's id).")
@AS_OPTION
@click.option("--wait", is_flag=True, help="Wait until memory has taken the decision.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="With --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print the command sent as JSON.")
def approve(
    run_id: str | None,
    call_id: str | None,
    every: bool,
    agent: str | None,
    tenant: str | None,
    arguments_json: str | None,
    reason: str,
    by: str,
    principal: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Let the held call CALL_ID of RUN_ID run (or, with --all, every pending call).

    Exit 0 when the approval was sent (with --wait: and memory took it), 1 when it was not
    sent since memory would refuse it (never held, decided already, the run ended, another
    tenant's), 2 for arguments that are not a JSON object, 3 when --wait timed out.
    """
    arguments = _arguments(arguments_json)
    if every:
        if run_id or call_id or arguments is not None or wait:
            raise click.UsageError("--all takes no RUN_ID, CALL_ID, --arguments or --wait")
        _decide_all(True, agent, tenant, reason, by, principal, as_json)
        return
    run_id, call_id = _one(run_id, call_id)
    _decide(run_id, call_id, True, arguments, reason, by, principal, wait, timeout, as_json)


@approvals.command("deny")
@click.argument("run_id", required=False)
@click.argument("call_id", required=False)
@all_options
@click.option("--reason", required=True, help="Why: the model is told.")
@click.option("--by", "by", default="", help="Who decides, as recorded (default: the key's id).")
@AS_OPTION
@click.option("--wait", is_flag=True, help="Wait until memory has taken the decision.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="With --wait.")
@click.option("--json", "as_json", is_flag=True, help="Print the command sent as JSON.")
def deny(
    run_id: str | None,
    call_id: str | None,
    every: bool,
    agent: str | None,
    tenant: str | None,
    reason: str,
    by: str,
    principal: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Refuse the held call CALL_ID of RUN_ID (or, with --all, every pending call): it never
    runs, and its model is told REASON.

    Exit codes as for `approve`.
    """
    if every:
        if run_id or call_id or wait:
            raise click.UsageError("--all takes no RUN_ID, CALL_ID or --wait")
        _decide_all(False, agent, tenant, reason, by, principal, as_json)
        return
    run_id, call_id = _one(run_id, call_id)
    _decide(run_id, call_id, False, None, reason, by, principal, wait, timeout, as_json)


async def _send_decision(
    client: Loopline,
    run_id: str,
    call_id: str,
    approved: bool,
    arguments: dict[str, Any] | None,
    reason: str,
    by: str,
) -> Envelope[Any]:
    if approved:
        return await client.approve(
            run_id, call_id, arguments=arguments, reason=reason, decided_by=by
        )
    return await client.deny(run_id, call_id, reason=reason, decided_by=by)


def _one(run_id: str | None, call_id: str | None) -> tuple[str, str]:
    if not run_id or not call_id:
        raise click.UsageError("give RUN_ID and CALL_ID, or --all")
    return run_id, call_id


def _decide_all(
    approved: bool,
    agent: str | None,
    tenant: str | None,
    reason: str,
    by: str,
    principal: str | None,
    as_json: bool,
) -> None:
    """Decide every call waiting now (of `agent`'s runs, of `tenant`'s): one command each,
    all from one client. A call decided meanwhile by someone else is reported, not decided."""

    async def send(client: Loopline) -> tuple[list[Envelope[Any]], list[str]]:
        # The calls waiting now: one look, so calls held while these are decided (the next
        # step's, say) wait for the next decision, not this one.
        waiting = await client.approvals(tenant=tenant, limit=ALL_LIMIT)
        if len(waiting) == ALL_LIMIT:
            click.echo(f"{ALL_LIMIT} or more calls wait: deciding the first {ALL_LIMIT}", err=True)
        sent: list[Envelope[Any]] = []
        refused: list[str] = []
        for held in (a for a in waiting if agent is None or a.agent == agent):
            try:
                sent.append(
                    await _send_decision(
                        client, held.run_id, held.call_id, approved, None, reason, by
                    )
                )
            except CommandRefusedError as exc:
                refused.append(f"{held.run_id} {held.call_id}: {exc}")
        return sent, refused

    sent, refused = _send(principal, send)
    if as_json:
        for event in sent:
            click.echo(encode_event(event).decode())
    else:
        verb = "approval" if approved else "denial"
        click.echo(f"{len(sent)} {verb}(s) sent")
    for why in refused:
        click.echo(f"error: {why}", err=True)
    if refused:
        sys.exit(EXIT_REFUSED)


@click.command()
@click.argument("run_id")
@click.argument("message")
@click.option("--by", "by", default="", help="Who says it, as recorded (default: the key's id).")
@AS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the command sent as JSON.")
def say(run_id: str, message: str, by: str, principal: str | None, as_json: bool) -> None:
    """Tell the agent of running RUN_ID something: MESSAGE joins its history as a user's
    message, which its model reads at its next step.

    Exit 0 when sent, 1 when memory knows no such run, it ended, or the key does not act for
    its tenant (nothing is sent), 2 for an empty or too long MESSAGE.
    """

    async def send(client: Loopline) -> Envelope[Any]:
        return await client.say(run_id, message, sent_by=by)

    sent = _send(principal, send)
    if as_json:
        click.echo(encode_event(sent).decode())
        return
    click.echo(f"told run {run_id} (as {_signer(sent)}); its model reads it at its next step")


def _decide(
    run_id: str,
    call_id: str,
    approved: bool,
    arguments: dict[str, Any] | None,
    reason: str,
    by: str,
    principal: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    async def send(client: Loopline) -> Envelope[Any]:
        return await _send_decision(client, run_id, call_id, approved, arguments, reason, by)

    sent = _send(principal, send)
    if as_json:
        click.echo(encode_event(sent).decode())
    else:
        verb = "approval" if approved else "denial"
        edited = " with edited arguments" if arguments is not None else ""
        click.echo(
            f"{verb}{edited} of call {call_id} of run {run_id} sent (as {_signer(sent)}, "
            f"event {sent.event_id})"
        )
    if wait:
        sys.exit(asyncio.run(_taken(run_id, call_id, sent, timeout, as_json)))


async def _taken(
    run_id: str, call_id: str, sent: Envelope[Any], timeout: float, as_json: bool
) -> int:
    """Exit status once memory's projection shows the call decided: 0 as sent, 1 otherwise
    (another answer, the other way, came first; or the run ended); 3 if it does not within
    `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        # PostgreSQL cannot be awaited: memory's projection is polled until it says so.
        found = await memory_reads(lambda c, s: reads.approval(c, s, run_id, call_id))
        if found is not None and found.decision is not None:
            mine = found.decision.get("approved") == sent.payload.approved
            if not as_json:
                click.echo(f"taken: {decided(found.decision)}")
            if not mine:
                click.echo("error: another decision was taken first", err=True)
            return 0 if mine else EXIT_REFUSED
        if found is None or found.run_status != "running":
            click.echo(f"error: run {run_id} ended before memory took the decision", err=True)
            return EXIT_REFUSED
        if time.monotonic() > deadline:
            click.echo(
                f"memory has not taken the decision after {timeout:g}s (is it running?)", err=True
            )
            return EXIT_TIMEOUT
        await asyncio.sleep(0.2)


def _send(principal: str | None, act: Callable[[Loopline], Awaitable[T]]) -> T:
    """What `act` does with a client signing as `principal`; exit 1 with the reason when it
    is refused, 2 when a field does not fit."""

    async def run() -> T:
        key = load_signing(principal).signing_key() if principal is not None else None
        async with Loopline(load_endpoints().kafka, producer="cli", signing_key=key) as client:
            return await act(client)

    try:
        return asyncio.run(run())
    except CommandRefusedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        click.echo(f"error: {problems}", err=True)
        sys.exit(EXIT_USAGE)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _arguments(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--arguments") from None
    if not isinstance(value, dict):
        raise click.BadParameter("a JSON object is expected", param_hint="--arguments")
    return value


def _signer(sent: Envelope[Any]) -> str:
    return sent.signature.key_id if sent.signature is not None else "no key: unsigned"


def _status(found: reads.Approval) -> str:
    if found.decision is not None:
        return decided(found.decision)
    if found.run_status != "running":
        return f"withdrawn: the run ended ({found.run_status})"
    return "pending"


def _as_json(found: reads.Approval) -> dict[str, Any]:
    return dataclasses.asdict(found) | {"pending": found.pending, "status": _status(found)}


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"
