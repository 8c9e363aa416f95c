"""With every server asking for credentials and every principal held to its ACLs, a tenant's
client still gets its goal run: the four services, each as its own principal, do their jobs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from loopline_events import RunCompleted
from loopline_infra import CredentialStore, principal_settings
from loopline_testing import System

from loopline.sdk import Loopline


@pytest.fixture
def store(loopline_access: CredentialStore | None) -> CredentialStore:
    assert loopline_access is not None, "these tests need the project's own servers"
    return loopline_access


async def test_a_tenants_client_submits_a_goal_and_reads_its_answer(
    system: System, store: CredentialStore
) -> None:
    client = principal_settings(store.require(), "client-default", namespace=system.prefix)
    async with Loopline(client, producer="client-default") as sdk:
        run = await sdk.submit("What is 6 * 7?")
        steps = [e.type async for e in run.steps()]
        outcome = run.outcome
    assert outcome is not None
    assert isinstance(outcome.payload, RunCompleted)
    assert "42" in outcome.payload.answer
    assert {"ContextAssembled", "ModelDecided", "ToolCallSucceeded"} <= set(steps)


def environment(pid: int) -> dict[str, str]:
    """The environment a process was started with."""
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def test_each_service_runs_as_its_own_principal(system: System) -> None:
    started = {s.name: environment(s.pid) for s in system.services.status() if s.pid}
    assert set(started) == {"memory", "planner", "tool-executor", "recovery"}
    for name, env in started.items():
        assert env["LOOPLINE_KAFKA_USERNAME"] == name
        assert env["LOOPLINE_SIGNING_KEY_ID"] == name
        assert env["LOOPLINE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        # Only those that check others' signatures get everyone's keys.
        assert ("LOOPLINE_SIGNING_KEYS_FILE" in env) == (name == "memory"), name
    assert started["planner"]["LOOPLINE_POSTGRES_DSN"].startswith("postgresql://loopline_planner:")
    assert started["tool-executor"]["LOOPLINE_REDIS_URL"].startswith("redis://tool-executor:")
    table = Path(started["memory"]["LOOPLINE_SIGNING_KEYS_FILE"])
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    keys = json.loads(table.read_text())["keys"]
    assert keys["planner"]["acts_for"] == ["*"]  # it fails runs over quota, of any tenant
    assert keys["tool-executor"]["acts_for"] == []
    assert keys["client-default"]["acts_for"] == ["default"]
    assert keys["recovery"]["acts_for"] == ["*"]
    assert keys["memory"]["secret"] == started["memory"]["LOOPLINE_SIGNING_KEY"]
    assert "admin" not in keys
