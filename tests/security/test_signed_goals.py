"""Tenants that cannot be forged, against the real services: memory holds the keyring, the
services sign their commands, each client signs with its tenant's key, and a goal or command
claiming a tenant its sender may not act for is refused with a clear answer while the others'
runs go on (docs/decisions/0025-signed-envelopes.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from loopline_events import (
    ANY_TENANT,
    CONTROL,
    GOALS,
    Envelope,
    FailRun,
    FailureReason,
    GoalRejected,
    GoalSubmitted,
    RejectionReason,
    RunCompleted,
    SigningKey,
    encode_event,
)
from loopline_runtime import schema_name
from loopline_testing import System
from loopline_testing.probes import produce

from loopline.sdk import Loopline, NoGoalError, replay_run

SERVICES = SigningKey("services", os.urandom(32))
ACME = SigningKey("client-acme", os.urandom(32))
BOB = SigningKey("client-bob", os.urandom(32))


def _keys_file(path: Path) -> Path:
    keys = {
        key.key_id: {"secret": base64.b64encode(key.secret).decode(), "acts_for": acts_for}
        for key, acts_for in ((SERVICES, [ANY_TENANT]), (ACME, ["acme"]), (BOB, ["bob"]))
    }
    path.write_text(json.dumps({"keys": keys}))
    return path


@pytest.fixture
def signed_system(start_system: Callable[..., System], tmp_path: Path) -> System:
    return start_system(
        env_extra={
            "LOOPLINE_SIGNING_KEYS_FILE": str(_keys_file(tmp_path / "signing-keys.json")),
            "LOOPLINE_SIGNING_KEY_ID": SERVICES.key_id,
            "LOOPLINE_SIGNING_KEY": base64.b64encode(SERVICES.secret).decode(),
        }
    )


async def test_a_tenant_s_signed_goal_runs_and_a_forged_one_is_rejected(
    signed_system: System,
) -> None:
    async with (
        Loopline(signed_system.kafka, signing_key=ACME) as acme,
        Loopline(signed_system.kafka, signing_key=BOB) as bob,
    ):
        mine = await acme.submit("What is 6 * 7?", tenant="acme")
        # Bob's key, claiming acme: acme's memories and budget are not his to use.
        forged = await bob.submit("What is 6 * 7?", tenant="acme")
        answer = await mine.result(timeout=60)
        refusal = await forged.result(timeout=60)
    assert isinstance(answer.payload, RunCompleted)
    assert "42" in answer.payload.answer
    assert isinstance(refusal.payload, GoalRejected)
    assert refusal.payload.reason is RejectionReason.NOT_AUTHORIZED
    assert "'client-bob' may not act for tenant 'acme'" in refusal.payload.message


async def test_an_unsigned_goal_from_a_raw_client_is_rejected(signed_system: System) -> None:
    run_id = f"raw-{uuid.uuid4().hex[:8]}"
    goal = Envelope.of(GoalSubmitted(goal="What is 6 * 7?"), run_id=run_id, producer="kcat")
    async with signed_system.results() as results:
        await produce(signed_system, GOALS.name, encode_event(goal), key=run_id)
        answers = await results.wait_for({run_id}, timeout=60, answers=(GoalRejected,))
    outcome = answers[run_id]
    assert isinstance(outcome.payload, GoalRejected)
    assert outcome.payload.message == "goal refused: it is not signed"
    # A replay without the signing keys (this process has none) folds what memory took, and
    # memory took nothing: the rejection in the log says so.
    with pytest.raises(NoGoalError, match="never started: memory rejected it"):
        await replay_run(signed_system.kafka, run_id)


async def test_commands_about_another_tenant_s_run_are_dead_lettered_as_forbidden(
    signed_system: System,
) -> None:
    async with (
        Loopline(signed_system.kafka, signing_key=ACME) as acme,
        Loopline(signed_system.kafka, signing_key=BOB) as bob,
    ):
        run = await acme.submit("Compute 17 + 25, then multiply the result by 3", tenant="acme")
        # Bob cancels acme's run as himself (his SDK signs it), and fails it claiming to be
        # recovery.
        await bob.cancel(run.run_id, reason="mine", tenant="bob")
        fail = BOB.sign(
            Envelope.of(
                FailRun(reason=FailureReason.STALLED, requested_by="recovery"),
                run_id=run.run_id,
                producer="recovery",
                tenant="bob",
            )
        )
        await produce(signed_system, CONTROL.name, encode_event(fail), key=run.run_id)
        outcome = await run.result(timeout=60)
        letters = await _dead_letters_of(signed_system, run.run_id, count=2)
    assert isinstance(outcome.payload, RunCompleted)
    assert "126" in outcome.payload.answer
    assert sorted((d["event_type"], d["consumer_group"], d["kind"]) for d in letters) == [
        ("CancelRun", "memory", "forbidden"),
        ("FailRun", "memory", "forbidden"),
    ]
    errors = {d["event_type"]: d["error"] for d in letters}
    assert "the run is not of tenant 'bob'" in errors["CancelRun"]
    assert "'client-bob' may not fail runs" in errors["FailRun"]


async def _dead_letters_of(system: System, run_id: str, count: int) -> list[dict[str, Any]]:
    """Recovery's ledger entries of `run_id`, once there are `count`."""
    schema = schema_name("recovery", system.kafka.topic_prefix)
    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        for _ in range(300):
            exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".dead_letters')
            rows = (
                await conn.fetch(
                    f'SELECT event_type, consumer_group, kind, error FROM "{schema}".dead_letters '
                    "WHERE run_id = $1",
                    run_id,
                )
                if exists
                else []
            )
            if len(rows) >= count:
                return [dict(r) for r in rows]
            await asyncio.sleep(0.2)
        return [dict(r) for r in rows]
    finally:
        await conn.close()
