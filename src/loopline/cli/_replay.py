"""`loopline replay`: a run's state rebuilt from the log, at its end or at step k."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import TextIO

import click
from loopline_events import RunCompleted
from loopline_memory.domain import RunState
from loopline_memory.history import held_states
from loopline_memory.main import open_rebuilder
from loopline_memory.rebuild import RebuildReport
from loopline_runtime import KafkaSettings, load_endpoints

from loopline.cli._render import echo_event, short
from loopline.sdk import Loopline, Replay, StepNotReachedError, replay_run, rerun_run

EXIT_NOT_FOUND = 1


@click.command()
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.option("--at", "at_step", type=int, default=None, help="Stop where step SEQ began.")
@click.option(
    "--check",
    is_flag=True,
    help="Compare each replayed state with the one memory holds; exit 1 if one differs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each state as a line of JSON.")
def replay(run_ids: tuple[str, ...], at_step: int | None, check: bool, as_json: bool) -> None:
    """Rebuild each RUN_ID's state from Kafka through memory's reducer and print it.

    With --at SEQ (one run): what the agent knew when it took step SEQ. With --check: whether
    memory's state of each run is the one its events rebuild. Exit 1 if the log holds no such
    run or step, or a state differs.
    """
    if at_step is not None and (check or len(run_ids) > 1):
        raise click.UsageError("--at replays one run, without --check")
    settings = load_endpoints().kafka
    replayed: dict[str, Replay] = {}
    try:
        if len(run_ids) == 1:
            replayed[run_ids[0]] = _replay_one(settings, run_ids[0], at_step)
        else:
            with click.progressbar(run_ids, label="replaying", file=sys.stderr) as runs:
                for run_id in runs:
                    replayed[run_id] = asyncio.run(replay_run(settings, run_id))
    except (LookupError, StepNotReachedError) as exc:
        click.echo(f"\nerror: {exc}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    verdicts = _compare_with_memory(replayed) if check else {}
    for run_id, done in replayed.items():
        assert done.state is not None
        if as_json:
            line = {
                "run_id": run_id,
                "at_step": at_step,
                "events_folded": done.folded,
                "events_ignored": done.ignored,
                "state": json.loads(done.state.model_dump_json()),
            }
            click.echo(json.dumps(line | ({"memory": verdicts[run_id]} if check else {})))
        elif check:
            click.echo(f"{run_id}  {verdicts[run_id]}")
        else:
            _print_state(done.state, done)
    if any(v != SAME for v in verdicts.values()):
        sys.exit(EXIT_DIFFERS)


SAME = "same"
"""A run whose replayed state is the one memory holds."""
EXIT_DIFFERS = 1


def _replay_one(settings: KafkaSettings, run_id: str, at_step: int | None) -> Replay:
    with click.progressbar(length=1, label="reading the log", file=sys.stderr) as bar:

        def progress(read: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(read - bar.pos)

        return asyncio.run(replay_run(settings, run_id, at_step=at_step, progress=progress))


def _compare_with_memory(replayed: dict[str, Replay]) -> dict[str, str]:
    """For each run: `same`, `absent from memory`, or which fields of the state differ."""
    held = asyncio.run(held_states(load_endpoints(), list(replayed)))
    verdicts = {}
    for run_id, done in replayed.items():
        assert done.state is not None
        if run_id not in held:
            verdicts[run_id] = "absent from memory"
            continue
        mine = json.loads(done.state.model_dump_json())
        theirs = json.loads(held[run_id].model_dump_json())
        fields = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        verdicts[run_id] = f"differs in {', '.join(fields)}" if fields else SAME
    return verdicts


def _print_state(state: RunState, replayed: Replay) -> None:
    click.echo(f"run       {state.run_id} (tenant {state.tenant}, agent {state.agent})")
    click.echo(
        f"status    {state.status.value}  step {state.step}/{state.max_steps}  "
        f"waiting for {state.phase.value}"
    )
    if state.failure:
        click.echo(f"failure   {state.failure.value}: {state.failure_message}")
    if state.pending_calls:
        click.echo(f"pending   {', '.join(state.pending_calls)}")
    for held in state.held:
        click.echo(
            f"held      step {held.step} {held.call_id} {held.tool}: asked "
            f"{held.requested_at:%Y-%m-%d %H:%M:%S}, {held.on_timeout} at {held.until:%H:%M:%S}"
        )
    for decided in state.decided:
        verdict = "approved" if decided.approved else "denied"
        why = f" ({short(decided.reason, 80)})" if decided.reason else ""
        click.echo(
            f"decided   step {decided.request.step} {decided.call_id} {decided.request.tool}: "
            f"{verdict} by {decided.decided_by or 'someone'} at "
            f"{decided.decided_at:%Y-%m-%d %H:%M:%S}{why}"
        )
    click.echo(
        f"spent     {state.usage.prompt_tokens} prompt + "
        f"{state.usage.completion_tokens} completion tokens"
    )
    click.echo(f"events    {replayed.folded} folded, {replayed.ignored} ignored")
    click.echo("context")
    for message in state.messages:
        if message.tool_calls:
            text = ", ".join(f"{c.tool}({json.dumps(c.arguments)})" for c in message.tool_calls)
        else:
            text = message.content
        click.echo(f"  {message.role:<9} {short(text, 100)}")
    if state.answer is not None:
        click.echo(f"answer    {short(state.answer, 200)}")


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def rerun(run_id: str, as_json: bool) -> None:
    """Re-run RUN_ID from its recorded decisions and tool results, calling no model and no
    tool, and report where today's reducer diverges from the original. Exit 0 when it does
    not, 1 when it does (or the run is unknown)."""
    try:
        report = asyncio.run(rerun_run(load_endpoints().kafka, run_id))
    except LookupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report) | {"diverged": report.diverged}))
    else:
        click.echo(
            f"re-ran {run_id} as {report.rerun_id}: {report.inputs} recorded inputs, "
            f"{report.compared} outputs compared, no model or tool called"
        )
        for d in report.divergences:
            click.echo(
                f"  step {d.step}: {d.what}\n    original {short(d.original, 160)}"
                f"\n    re-run   {short(d.rerun, 160)}"
            )
        click.echo("diverged" if report.diverged else "no divergence")
    sys.exit(1 if report.diverged else 0)


@click.command()
@click.argument("run_id")
@click.option("--from", "from_step", type=int, required=True, help="Copy steps 1..SEQ.")
@click.option("--agent", default=None, help="Agent profile of the fork (default: the run's).")
@click.option("--model", default=None, help="Model of the fork, e.g. demo or openai:gpt-4o.")
@click.option(
    "--prompt",
    "prompt_file",
    type=click.File("r"),
    default=None,
    help="A file whose text replaces the system prompt.",
)
@click.option("--wait", is_flag=True, help="Stream the fork's steps and print its answer.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
def fork(
    run_id: str,
    from_step: int,
    agent: str | None,
    model: str | None,
    prompt_file: TextIO | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Start a new run from RUN_ID's first SEQ steps (copied: no model or tool is called for
    them) that goes on live, with another agent, model or prompt. Both runs record the lineage.
    With --wait: exit 0 if the fork completed, 1 if not."""
    prompt = prompt_file.read() if prompt_file else None
    sys.exit(asyncio.run(_fork(run_id, from_step, agent, model, prompt, wait, as_json)))


async def _fork(
    run_id: str,
    from_step: int,
    agent: str | None,
    model: str | None,
    prompt: str | None,
    wait: bool,
    as_json: bool,
) -> int:
    async with Loopline(load_endpoints().kafka, producer="cli") as client:
        try:
            run = await client.fork(
                run_id, from_step=from_step, agent=agent, model=model, system_prompt=prompt
            )
        except (LookupError, StepNotReachedError) as exc:
            click.echo(f"error: {exc}", err=True)
            return EXIT_NOT_FOUND
        click.echo(
            json.dumps({"run_id": run.run_id, "forked_from": run_id, "from_step": from_step})
            if as_json
            else f"run {run.run_id} forked from {run_id} after step {from_step}"
        )
        if not wait:
            return 0
        async for event in run.steps():
            echo_event(event, as_json=as_json)
    outcome = run.outcome
    return 0 if outcome is not None and isinstance(outcome.payload, RunCompleted) else 1


@click.command()
@click.option("--tenant", default=None, help="Only this tenant's runs (default: every run).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def rebuild(tenant: str | None, as_json: bool) -> None:
    """Throw away memory's projections (Redis hot state, PostgreSQL runs, timeline, usage) of
    the runs in the log and rebuild them from the topics. The services may keep running."""

    async def _rebuild() -> RebuildReport:
        endpoints = load_endpoints()
        rebuilder, close = await open_rebuilder(endpoints)
        try:
            with click.progressbar(length=1, label="reading the log", file=sys.stderr) as bar:

                def progress(read: int, total: int) -> None:
                    bar.length = max(total, 1)
                    bar.update(read - bar.pos)

                return await rebuilder.rebuild(endpoints.kafka, tenant=tenant, progress=progress)
        finally:
            await close()

    report = asyncio.run(_rebuild())
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report)))
    else:
        click.echo(
            f"rebuilt {report.runs} runs from {report.events} events in {report.seconds:.1f}s"
        )
