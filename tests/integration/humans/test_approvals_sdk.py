"""The SDK's approvals and messages on the real Kafka, Redis and PostgreSQL: it reads memory's
projection, raises CommandRefusedError (sending nothing) for what memory would refuse, and
returns the signed command it sent."""

from __future__ import annotations

import pytest
from loopline_events import ApprovalDecided, RunSteered, Verified
from loopline_memory.domain import RunStatus
from loopline_runtime import Endpoints, load_signing
from loopline_testing.approvals import (
    HeldRuns,
    commands,
    decided_call,
    held_call,
    session_keyring,
)

from loopline.sdk import CommandRefusedError, Loopline

pytestmark = pytest.mark.integration


def client(namespace: Endpoints, principal: str | None = None) -> Loopline:
    key = load_signing(principal).signing_key() if principal else None
    return Loopline(namespace.kafka, signing_key=key, postgres=namespace.postgres)


async def test_approvals_lists_the_pending_and_approval_reads_the_decided(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    pending = await held_runs.run(tenant="acme", held=[held_call("c1")])
    other = await held_runs.run(tenant="globex", held=[held_call("c1")])
    done = await held_runs.run(
        decided=[decided_call(held_call("c2"), approved=False, by="bob", reason="no")]
    )
    async with client(namespace) as sdk:
        assert {a.run_id for a in await sdk.approvals()} == {pending, other}
        assert [a.run_id for a in await sdk.approvals(tenant="acme")] == [pending]
        found = await sdk.approval(done, "c2")
        assert found is not None
        assert found.decision is not None
        assert (found.decision["approved"], found.decision["decided_by"]) == (False, "bob")
        assert not found.pending
        assert await sdk.approval(done, "c9") is None


async def test_approve_deny_and_say_return_what_they_sent(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    run_id = await held_runs.run(tenant="acme", held=[held_call("c1"), held_call("c2")])
    async with client(namespace, "client-acme") as sdk:
        approved = await sdk.approve(run_id, "c1", arguments={"amount": 5}, decided_by="ann")
        denied = await sdk.deny(run_id, "c2", reason="duplicate")
        told = await sdk.say(run_id, "Stop after this payment.")
    assert await commands(namespace.kafka, run_id) == [approved, denied, told]
    assert isinstance(approved.payload, ApprovalDecided)
    assert approved.payload.arguments == {"amount": 5}
    assert approved.payload.decided_by == "ann"
    assert isinstance(denied.payload, ApprovalDecided)
    assert (denied.payload.approved, denied.payload.reason) == (False, "duplicate")
    assert denied.payload.decided_by == "client-acme"
    assert isinstance(told.payload, RunSteered)
    assert told.payload.sent_by == "client-acme"
    for sent in (approved, denied, told):
        assert (sent.tenant, sent.producer) == ("acme", "sdk")
        assert session_keyring().verify(sent) == Verified("client-acme", acts_for_any=False)


async def test_what_memory_would_refuse_is_raised_and_not_sent(
    held_runs: HeldRuns, namespace: Endpoints
) -> None:
    globex = await held_runs.run(tenant="globex", held=[held_call("c1")])
    for_bob = await held_runs.run(tenant="acme", held=[held_call("c1", approvers=["bob"])])
    failed = await held_runs.run(status=RunStatus.FAILED, held=[held_call("c1")])
    async with client(namespace, "client-acme") as sdk:
        with pytest.raises(CommandRefusedError) as refused:
            await sdk.approve(globex, "c1")
        assert refused.value.why == "other_tenant"
        with pytest.raises(CommandRefusedError) as refused:
            await sdk.say(globex, "hello")
        assert refused.value.why == "other_tenant"
        with pytest.raises(CommandRefusedError) as refused:
            await sdk.approve(for_bob, "c1")
        assert refused.value.why == "not_approver"
    async with client(namespace) as sdk:  # the operator
        with pytest.raises(CommandRefusedError) as refused:
            await sdk.deny(failed, "c1", reason="late")
        assert refused.value.why == "run_ended"
        with pytest.raises(CommandRefusedError) as refused:
            await sdk.say(failed, "hello")
        assert refused.value.why == "run_ended"
        with pytest.raises(CommandRefusedError) as refused:
            await sdk.approve("run-nobody-knows", "c1")
        assert refused.value.why == "no_run"
        approved = await sdk.approve(for_bob, "c1")  # an operator may, whoever is named
    assert await commands(namespace.kafka, globex) == []
    assert await commands(namespace.kafka, failed) == []
    assert await commands(namespace.kafka, for_bob) == [approved]
