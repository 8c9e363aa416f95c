"""The gateway's approvals and messages on a running system: a key sees and decides its own
tenant's held calls only (another tenant's run is not found), a call not pending is a 409
saying why, and a decision or message is one command on agent.control, signed by the
gateway, for the run's tenant.

Memory's projection holds the calls as memory writes them (loopline_testing.approvals): the
agents of the test profiles hold none of their own. The run page shows a run's held calls
with Approve and Deny, and a form to message its agent (in chromium, as the page tests do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from loopline_events import ApprovalDecided, Envelope, RunSteered, Verified
from loopline_memory.domain import RunStatus
from loopline_runtime import Endpoints
from loopline_testing import System
from loopline_testing.approvals import (
    HeldRuns,
    commands,
    decided_call,
    held_call,
    session_keyring,
)
from loopline_testing.gateway import Keys, client
from playwright.async_api import BrowserContext, expect

pytestmark = pytest.mark.e2e


@pytest.fixture
async def held_runs(
    gateway_system: System, loopline_endpoints: Endpoints
) -> AsyncIterator[HeldRuns]:
    namespace = loopline_endpoints.model_copy(update={"kafka": gateway_system.kafka})
    runs = await HeldRuns.open(namespace)
    try:
        yield runs
    finally:
        await runs.close()


async def _key_id(system: System, key: str) -> str:
    async with client(system.gateway_url, key) as http:
        key_id: str = (await http.get("/v1/whoami")).json()["key_id"]
    return key_id


async def _the_one_command(system: System, run_id: str) -> Envelope[Any]:
    sent = await commands(system.kafka, run_id)
    assert len(sent) == 1, [e.type for e in sent]
    assert sent[0].producer == "gateway"
    assert session_keyring().verify(sent[0]) == Verified("gateway", acts_for_any=True)
    return sent[0]


async def test_each_key_lists_and_reads_its_tenants_held_calls(
    gateway_system: System, keys: Keys, held_runs: HeldRuns
) -> None:
    acme = await held_runs.run(tenant="acme", held=[held_call("c1", arguments={"amount": 9})])
    globex = await held_runs.run(tenant="globex", held=[held_call("c1")])
    decided = await held_runs.run(
        tenant="acme", decided=[decided_call(held_call("c2"), approved=True, by="ann")]
    )
    url = gateway_system.gateway_url
    async with client(url, keys.alice) as http:
        listed = (await http.get("/v1/approvals")).json()["approvals"]
        assert [(a["run_id"], a["call_id"], a["status"]) for a in listed] == [
            (acme, "c1", "pending")
        ]
        assert listed[0]["arguments"] == {"amount": 9}
        assert (await http.get("/v1/approvals", params={"tenant": "globex"})).status_code == 403
        one = (await http.get(f"/v1/runs/{acme}/approvals/c1")).json()
        assert (one["tool"], one["on_timeout"], one["decision"]) == ("send_payment", "deny", None)
        done = (await http.get(f"/v1/runs/{decided}/approvals/c2")).json()
        assert done["status"] == "approved"
        assert done["decision"]["decided_by"] == "ann"
        never = await http.get(f"/v1/runs/{acme}/approvals/c9")
        assert never.status_code == 404
        assert never.json()["detail"] == f"no held call c9 in run {acme}"
        hidden = await http.get(f"/v1/runs/{globex}/approvals/c1")
        assert (hidden.status_code, hidden.json()["detail"]) == (404, f"no run {globex}")
    async with client(url, keys.bob) as http:
        listed = (await http.get("/v1/approvals")).json()["approvals"]
        assert [a["run_id"] for a in listed] == [globex]
    async with client(url, keys.operator) as http:
        everyone = {a["run_id"] for a in (await http.get("/v1/approvals")).json()["approvals"]}
        assert {acme, globex} <= everyone
        only = (await http.get("/v1/approvals", params={"tenant": "globex"})).json()
        assert {a["tenant"] for a in only["approvals"]} == {"globex"}
        spec = (await http.get("/openapi.json")).json()
        assert spec["paths"]["/v1/approvals"]["get"]["tags"] == ["approvals"]
        assert "409" in spec["paths"]["/v1/runs/{run_id}/approvals/{call_id}"]["post"]["responses"]


async def test_a_decision_is_one_command_signed_by_the_gateway_for_the_runs_tenant(
    gateway_system: System, keys: Keys, held_runs: HeldRuns
) -> None:
    run_id = await held_runs.run(tenant="acme", held=[held_call("c1"), held_call("c2")])
    key_id = await _key_id(gateway_system, keys.alice)
    async with client(gateway_system.gateway_url, keys.alice) as http:
        answer = await http.post(
            f"/v1/runs/{run_id}/approvals/c1",
            json={"approved": True, "arguments": {"amount": 50}, "reason": "halved"},
        )
    assert answer.status_code == 202, answer.text
    sent = await _the_one_command(gateway_system, run_id)
    assert answer.json() == {
        "run_id": run_id,
        "call_id": "c1",
        "approved": True,
        "decided_by": f"gateway:{key_id}",
        "event_id": str(sent.event_id),
    }
    assert isinstance(sent.payload, ApprovalDecided)
    assert sent.payload.model_dump() == {
        "call_id": "c1",
        "approved": True,
        "arguments": {"amount": 50},
        "reason": "halved",
        "decided_by": f"gateway:{key_id}",
    }
    assert (sent.run_id, sent.tenant) == (run_id, "acme")


async def test_what_is_not_pending_or_not_yours_is_refused_and_not_sent(
    gateway_system: System, keys: Keys, held_runs: HeldRuns
) -> None:
    decided = await held_runs.run(
        decided=[decided_call(held_call("c1"), approved=False, by="ann", reason="no")]
    )
    ended = await held_runs.run(status=RunStatus.CANCELLED, held=[held_call("c1")])
    pending = await held_runs.run(held=[held_call("c1")])
    for_ops = await held_runs.run(held=[held_call("c1", approvers=["nobody"])])
    approve = {"approved": True}
    url = gateway_system.gateway_url
    async with client(url, keys.alice) as http:
        cases = [
            (decided, "c1", approve, 409, f"call c1 of run {decided} was already denied by ann"),
            (ended, "c1", approve, 409, f"run {ended} ended (cancelled)"),
            (pending, "c9", approve, 404, f"call c9 of run {pending} was never held"),
            (for_ops, "c1", approve, 403, "may be decided only by an operator or by nobody"),
            (pending, "c1", {"approved": False, "arguments": {}}, 422, "invalid request"),
            (pending, "c1", {"approved": True, "colour": "red"}, 422, "invalid request"),
        ]
        for run_id, call_id, body, status, detail in cases:
            answer = await http.post(f"/v1/runs/{run_id}/approvals/{call_id}", json=body)
            assert answer.status_code == status, (run_id, call_id, body, answer.text)
            assert detail in answer.json()["detail"], answer.text
    async with client(url, keys.bob) as http:  # another tenant's run: not found
        answer = await http.post(f"/v1/runs/{pending}/approvals/c1", json=approve)
        assert (answer.status_code, answer.json()["detail"]) == (404, f"no run {pending}")
        answer = await http.post(f"/v1/runs/{pending}/messages", json={"message": "hi"})
        assert answer.status_code == 404
    for run_id in (decided, ended, pending, for_ops):
        assert await commands(gateway_system.kafka, run_id) == []
    async with client(url, keys.operator) as http:  # an operator may, whoever is named
        answer = await http.post(f"/v1/runs/{for_ops}/approvals/c1", json={"approved": False})
        assert answer.status_code == 202, answer.text
    sent = await _the_one_command(gateway_system, for_ops)
    assert isinstance(sent.payload, ApprovalDecided)
    assert sent.payload.approved is False


async def test_a_message_reaches_a_running_run_only(
    gateway_system: System, keys: Keys, held_runs: HeldRuns
) -> None:
    running = await held_runs.run(tenant="acme")
    completed = await held_runs.run(tenant="acme", status=RunStatus.COMPLETED)
    key_id = await _key_id(gateway_system, keys.alice)
    async with client(gateway_system.gateway_url, keys.alice) as http:
        told = await http.post(f"/v1/runs/{running}/messages", json={"message": "Use EUR."})
        assert told.status_code == 202, told.text
        late = await http.post(f"/v1/runs/{completed}/messages", json={"message": "Use EUR."})
        assert late.status_code == 409
        assert late.json()["detail"].startswith(f"run {completed} ended (completed)")
        empty = await http.post(f"/v1/runs/{running}/messages", json={"message": ""})
        assert empty.status_code == 422
    sent = await _the_one_command(gateway_system, running)
    assert isinstance(sent.payload, RunSteered)
    assert (sent.payload.message, sent.payload.sent_by) == ("Use EUR.", f"gateway:{key_id}")
    assert sent.tenant == "acme"
    assert told.json()["event_id"] == str(sent.event_id)
    assert await commands(gateway_system.kafka, completed) == []


@pytest.mark.timeout(240)
async def test_the_run_page_approves_denies_and_messages(
    gateway_system: System, keys: Keys, held_runs: HeldRuns, browser: BrowserContext
) -> None:
    run_id = await held_runs.run(
        tenant="acme",
        held=[held_call("c1", tool="send_payment"), held_call("c2", tool="delete_file")],
    )
    base = gateway_system.gateway_url
    page = await browser.new_page()
    await page.goto(f"{base}/login?next=/ui/runs/{run_id}")
    await page.fill("#key", keys.alice)
    await page.click("#sign-in")
    held = page.locator("#held form.held-call")
    await expect(held).to_have_count(2)
    await expect(held.nth(0)).to_contain_text("send_payment")
    await expect(held.nth(0)).to_contain_text('"amount": 120')

    # Each form posts and the page comes back to the run: wait for that load, not for the
    # URL (the page is at it already, and a field filled before the load would be lost).
    await held.nth(0).locator("input[name=reason]").fill("known payee")
    async with page.expect_navigation(url=f"{base}/ui/runs/{run_id}"):
        await held.nth(0).locator("button.approve").click()
    deny = page.locator('#held form[data-call="c2"]')
    await deny.locator("input[name=reason]").fill("never delete")
    async with page.expect_navigation(url=f"{base}/ui/runs/{run_id}"):
        await deny.locator("button.deny").click()
    await page.fill("#message", "Pay in EUR.")
    async with page.expect_navigation(url=f"{base}/ui/runs/{run_id}"):
        await page.click("#send-message")

    sent = await commands(gateway_system.kafka, run_id)
    got = [(e.type, e.payload.model_dump(exclude={"decided_by", "sent_by"})) for e in sent]
    assert got == [
        (
            "ApprovalDecided",
            {"call_id": "c1", "approved": True, "arguments": None, "reason": "known payee"},
        ),
        (
            "ApprovalDecided",
            {"call_id": "c2", "approved": False, "arguments": None, "reason": "never delete"},
        ),
        ("RunSteered", {"message": "Pay in EUR."}),
    ]
    assert all(e.tenant == "acme" and e.producer == "gateway" for e in sent)
