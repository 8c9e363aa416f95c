"""`loopline approvals` and `loopline say` on the real Kafka, Redis and PostgreSQL: they read
memory's projection through its read API, refuse (exit 1, saying why, sending nothing) what
memory would refuse, and otherwise send exactly one signed command on agent.control."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner, Result
from loopline_events import ApprovalDecided, Envelope, RunSteered, Verified, decode_event
from loopline_memory.domain import RunStatus
from loopline_runtime import Endpoints
from loopline_testing.approvals import (
    HeldRuns,
    commands,
    decided_call,
    held_call,
    session_keyring,
)

from loopline.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _in_namespace(namespace: Endpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_KAFKA_TOPIC_PREFIX", namespace.kafka.topic_prefix)


async def cli(*args: str) -> Result:
    """`loopline ARGS`, in-process, as a user runs it (its own event loop, in a thread)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def the_one_command(namespace: Endpoints, run_id: str) -> Envelope[Any]:
    sent = await commands(namespace.kafka, run_id)
    assert len(sent) == 1, [e.type for e in sent]
    return sent[0]


async def test_ls_lists_pending_calls_and_show_reads_one(held_runs: HeldRuns) -> None:
    acme = await held_runs.run(tenant="acme", held=[held_call("c1", arguments={"amount": 120})])
    globex = await held_runs.run(tenant="globex", held=[held_call("c2", on_timeout="fail")])
    done = await held_runs.run(
        decided=[decided_call(held_call("c3"), approved=True, by="alice", reason="known payee")]
    )
    listed = await cli("approvals", "ls", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {(a["run_id"], a["call_id"]): a for a in json.loads(listed.output)}
    assert set(rows) == {(acme, "c1"), (globex, "c2")}
    assert rows[(acme, "c1")]["arguments"] == {"amount": 120}
    assert rows[(acme, "c1")]["pending"] is True
    assert rows[(globex, "c2")]["on_timeout"] == "fail"

    only_acme = await cli("approvals", "ls", "--tenant", "acme", "--json")
    assert [a["run_id"] for a in json.loads(only_acme.output)] == [acme]
    text = await cli("approvals", "ls", "--tenant", "acme")
    assert acme in text.output
    assert "send_payment" in text.output
    assert '{"amount": 120}' in text.output
    assert "waiting   5m0" in text.output
    assert "then deny" in text.output
    assert (await cli("approvals", "ls", "--tenant", "initech")).output == (
        "no calls wait for approval\n"
    )

    shown = await cli("approvals", "show", acme, "c1")
    assert shown.exit_code == 0, shown.output
    assert "tool send_payment" in shown.output
    assert "status: pending" in shown.output
    decided = await cli("approvals", "show", done, "c3")
    assert "status: approved by alice at " in decided.output
    assert decided.output.rstrip().endswith(": known payee")
    as_json = json.loads((await cli("approvals", "show", done, "c3", "--json")).output)
    assert as_json["decision"]["decided_by"] == "alice"
    assert as_json["pending"] is False
    missing = await cli("approvals", "show", acme, "c9")
    assert missing.exit_code == 1
    assert f"no held call c9 in run {acme}" in missing.output


async def test_approve_sends_one_signed_decision_for_the_runs_tenant(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    run_id = await held_runs.run(tenant="acme", held=[held_call("c1")])
    done = await cli(
        "approvals",
        "approve",
        run_id,
        "c1",
        "--arguments",
        '{"to": "acct-7", "amount": 100}',
        "--reason",
        "capped at 100",
        "--by",
        "alice",
        "--json",
    )
    assert done.exit_code == 0, done.output
    sent = await the_one_command(namespace, run_id)
    assert sent == decode_event(done.output)
    assert isinstance(sent.payload, ApprovalDecided)
    assert sent.payload.model_dump() == {
        "call_id": "c1",
        "approved": True,
        "arguments": {"to": "acct-7", "amount": 100},
        "reason": "capped at 100",
        "decided_by": "alice",
    }
    assert (sent.run_id, sent.tenant, sent.producer) == (run_id, "acme", "cli")
    assert session_keyring().verify(sent) == Verified("operator", acts_for_any=True)


async def test_deny_sends_the_reason_and_no_arguments(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    run_id = await held_runs.run(tenant="globex", held=[held_call("c1"), held_call("c2")])
    done = await cli("approvals", "deny", run_id, "c2", "--reason", "not this payee")
    assert done.exit_code == 0, done.output
    assert f"denial of call c2 of run {run_id} sent (as operator, event " in done.output
    sent = await the_one_command(namespace, run_id)
    assert isinstance(sent.payload, ApprovalDecided)
    assert (sent.payload.call_id, sent.payload.approved) == ("c2", False)
    assert sent.payload.arguments is None
    assert sent.payload.reason == "not this payee"
    assert sent.payload.decided_by == "operator"
    assert sent.tenant == "globex"
    assert isinstance(session_keyring().verify(sent), Verified)


async def test_a_call_not_pending_is_refused_and_nothing_is_sent(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    running = await held_runs.run(held=[held_call("c1")])
    decided = await held_runs.run(
        decided=[decided_call(held_call("c1"), approved=True, by="alice")]
    )
    cancelled = await held_runs.run(status=RunStatus.CANCELLED, held=[held_call("c1")])
    globex = await held_runs.run(tenant="globex", held=[held_call("c1")])
    cases = [
        (("approve", running, "c9"), f"call c9 of run {running} was never held for approval"),
        (("approve", decided, "c1"), f"call c1 of run {decided} was already approved by alice"),
        (
            ("deny", cancelled, "c1", "--reason", "no"),
            f"run {cancelled} ended (cancelled): its held call c1 was withdrawn",
        ),
        (("approve", "run-nobody-knows", "c1"), "memory knows no run run-nobody-knows"),
        (
            ("approve", globex, "c1", "--as", "client-acme"),
            f"run {globex} is of tenant 'globex', which 'client-acme' does not act for",
        ),
    ]
    for args, message in cases:
        refused = await cli("approvals", *args)
        assert refused.exit_code == 1, (args, refused.output)
        assert f"error: {message}" in refused.output, (args, refused.output)
    for run_id in (running, decided, cancelled, globex, "run-nobody-knows"):
        assert await commands(namespace.kafka, run_id) == []


async def test_bad_arguments_are_a_usage_error(held_runs: HeldRuns, namespace: Endpoints) -> None:
    run_id = await held_runs.run(held=[held_call("c1")])
    for args in (
        ("approve", run_id, "c1", "--arguments", "{amount: 1"),
        ("approve", run_id, "c1", "--arguments", "[1, 2]"),
        ("deny", run_id, "c1"),
        ("approve", run_id, "c1", "--reason", "x" * 5_000),
    ):
        refused = await cli("approvals", *args)
        assert refused.exit_code == 2, (args[:4], refused.output)
    assert await commands(namespace.kafka, run_id) == []


async def test_wait_gives_up_when_memory_does_not_take_the_decision(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    # No memory runs here: the decision is sent, and never taken.
    run_id = await held_runs.run(held=[held_call("c1")])
    waited = await cli("approvals", "approve", run_id, "c1", "--wait", "--timeout", "0.5")
    assert waited.exit_code == 3, waited.output
    assert "memory has not taken the decision after 0.5s" in waited.output
    assert len(await commands(namespace.kafka, run_id)) == 1


async def test_say_tells_a_running_run_and_refuses_one_that_ended(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    running = await held_runs.run(tenant="acme")
    done = await cli("say", running, "Use the EUR account instead.", "--as", "client-acme")
    assert done.exit_code == 0, done.output
    assert "its model reads it at its next step" in done.output
    sent = await the_one_command(namespace, running)
    assert isinstance(sent.payload, RunSteered)
    assert sent.payload.message == "Use the EUR account instead."
    assert sent.payload.sent_by == "client-acme"
    assert (sent.tenant, sent.producer) == ("acme", "cli")
    assert session_keyring().verify(sent) == Verified("client-acme", acts_for_any=False)

    completed = await held_runs.run(status=RunStatus.COMPLETED)
    globex = await held_runs.run(tenant="globex")
    for args, message, code in [
        ((completed, "hi"), f"run {completed} ended (completed): its agent reads no more", 1),
        (("run-nobody-knows", "hi"), "memory knows no run run-nobody-knows", 1),
        ((globex, "hi", "--as", "client-acme"), "which 'client-acme' does not act for", 1),
        ((running, ""), "message", 2),
    ]:
        refused = await cli("say", *args)
        assert refused.exit_code == code, (args, refused.output)
        assert message in refused.output
    for run_id in (completed, globex, "run-nobody-knows"):
        assert await commands(namespace.kafka, run_id) == []
    assert len(await commands(namespace.kafka, running)) == 1
