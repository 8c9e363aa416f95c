"""The gateway's API on a running system: keys bound to tenants, a tenant's runs invisible to
every other tenant, operators apart, and bad requests answered with a 4xx and a reason."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from loopline_testing import System
from loopline_testing.gateway import Keys, client, follow

pytestmark = pytest.mark.e2e

WRONG_KEY = "llk_0123456789ab_" + "x" * 43


async def _completed_run(system: System, key: str, body: Mapping[str, object]) -> str:
    async with client(system.gateway_url, key) as http:
        accepted = await http.post("/v1/runs", json=body)
        assert accepted.status_code == 202, accepted.text
        run_id: str = accepted.json()["run_id"]
        events = await follow(http, run_id)
    assert events[-1].json()["type"] == "RunCompleted", [e.json()["type"] for e in events]
    return run_id


async def test_a_key_acts_as_its_tenant_whatever_the_body_says(
    gateway_system: System, keys: Keys
) -> None:
    body = {"goal": "What is 6 * 7?", "tenant": "globex"}
    run_id = await _completed_run(gateway_system, keys.alice, body)
    async with client(gateway_system.gateway_url, keys.alice) as http:
        run = (await http.get(f"/v1/runs/{run_id}")).json()
        assert run["tenant"] == "acme"
        assert run["status"] == "completed"
        assert "42" in run["outcome"]["answer"]
        assert run["usage"]["total_tokens"] > 0
        listed = (await http.get("/v1/runs")).json()["runs"]
        assert run_id in {r["run_id"] for r in listed}
        assert {r["tenant"] for r in listed} == {"acme"}
        steps = (await http.get(f"/v1/runs/{run_id}/steps")).json()["steps"]
        assert steps[0]["calls"][0]["tool"] == "calculator"
        assert steps[0]["calls"][0]["outcome"] == "succeeded"
        assert steps[-1]["decision"] == "answer"
    async with client(gateway_system.gateway_url, keys.bob) as http:
        listed = (await http.get("/v1/runs")).json()["runs"]
        assert run_id not in {r["run_id"] for r in listed}


async def test_another_tenants_run_is_not_found(gateway_system: System, keys: Keys) -> None:
    run_id = await _completed_run(gateway_system, keys.alice, {"goal": "What is 2 + 2?"})
    async with client(gateway_system.gateway_url, keys.bob) as http:
        for method, path in [
            ("GET", f"/v1/runs/{run_id}"),
            ("GET", f"/v1/runs/{run_id}/steps"),
            ("GET", f"/v1/runs/{run_id}/timeline"),
            ("GET", f"/v1/runs/{run_id}/events"),
            ("GET", f"/v1/runs/{run_id}/state"),
            ("POST", f"/v1/runs/{run_id}/cancel"),
            ("POST", f"/v1/runs/{run_id}/rerun"),
        ]:
            answer = await http.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["detail"] == f"no run {run_id}"
        forked = await http.post(f"/v1/runs/{run_id}/fork", json={"from_step": 1})
        assert forked.status_code == 404
        assert (await http.get("/v1/runs", params={"tenant": "acme"})).status_code == 403
    async with client(gateway_system.gateway_url, keys.operator) as http:
        run = (await http.get(f"/v1/runs/{run_id}")).json()
        assert run["tenant"] == "acme"
        tenants = {r["tenant"] for r in (await http.get("/v1/runs")).json()["runs"]}
        assert "acme" in tenants


async def test_no_key_or_a_wrong_one_is_401(gateway_system: System, keys: Keys) -> None:
    altered = keys.alice[:-1] + ("B" if keys.alice.endswith("A") else "A")  # never the key itself
    for key in (None, WRONG_KEY, "not-a-key", altered):
        async with client(gateway_system.gateway_url, key) as http:
            for method, path in [
                ("GET", "/v1/runs"),
                ("POST", "/v1/runs"),
                ("GET", "/v1/runs/x/events"),
                ("GET", "/v1/dead-letters"),
            ]:
                answer = await http.request(method, path, json={"goal": "hi"})
                assert answer.status_code == 401, (key, method, path, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"


async def test_only_operators_see_and_redrive_dead_letters(
    gateway_system: System, keys: Keys
) -> None:
    async with client(gateway_system.gateway_url, keys.alice) as http:
        assert (await http.get("/v1/dead-letters")).status_code == 403
        redrive = await http.post(f"/v1/dead-letters/{'0' * 8}-0000-0000-0000-{'0' * 12}/redrive")
        assert redrive.status_code == 403
        assert "operators only" in redrive.json()["detail"]
    async with client(gateway_system.gateway_url, keys.operator) as http:
        assert (await http.get("/v1/dead-letters")).status_code == 200
        missing = await http.post(f"/v1/dead-letters/{'0' * 8}-0000-0000-0000-{'0' * 12}/redrive")
        assert missing.status_code == 404


async def test_bad_requests_get_a_4xx_with_a_reason(gateway_system: System, keys: Keys) -> None:
    async with client(gateway_system.gateway_url, keys.alice) as http:
        cases = [
            (await http.post("/v1/runs", content=b"{not json", headers=_json()), 422),
            (await http.post("/v1/runs", json={"goal": ""}), 422),
            (await http.post("/v1/runs", json={"goal": "x", "colour": "red"}), 422),
            (await http.post("/v1/runs", json={"goal": "x", "agent": "nobody"}), 400),
            (await http.post("/v1/runs", json={"goal": "x" * 300_000}), 413),
            (await http.get("/v1/runs", params={"status": "asleep"}), 422),
            (await http.get("/v1/runs", params={"limit": "100000"}), 422),
            (await http.get("/v1/runs/" + "r" * 200), 404),
            (await http.get("/v1/runs/x/events", headers={"Last-Event-ID": "1;DROP"}), 400),
        ]
        for answer, status in cases:
            assert answer.status_code == status, (answer.request.url, answer.text)
            assert answer.json()["detail"], answer.text
        assert (await http.get("/openapi.json")).json()["paths"]["/v1/runs"]["post"]


async def test_the_same_idempotency_key_starts_one_run(gateway_system: System, keys: Keys) -> None:
    async with client(gateway_system.gateway_url, keys.alice) as http:
        headers = {"Idempotency-Key": "order-17"}
        first = await http.post("/v1/runs", json={"goal": "What is 3 * 3?"}, headers=headers)
        again = await http.post("/v1/runs", json={"goal": "What is 3 * 3?"}, headers=headers)
        assert first.json()["run_id"] == again.json()["run_id"]
        events = await follow(http, first.json()["run_id"])
        seen = [e.json() for e in events]
        # What each event was, and how the run ended, if it did not complete once.
        assert [e["type"] for e in seen].count("RunCompleted") == 1, [
            (e["type"], e.get("seq"), e["payload"] if e["type"] == "RunFailed" else "")
            for e in seen
        ]
        other = await http.post("/v1/runs", json={"goal": "What is 3 * 3?"})
        assert other.json()["run_id"] != first.json()["run_id"]


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}
