"""Goals and commands carry their sender's signature, and memory takes one only from a key
that may act for its tenant (docs/decisions/0025-signed-envelopes.md)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from loopline_events import (
    ANY_TENANT,
    CancelRun,
    Envelope,
    FailRun,
    FailureReason,
    GoalRejected,
    GoalSubmitted,
    Keyring,
    Refused,
    RejectionReason,
    RunForked,
    SigningKey,
    Verified,
    decode_event,
    encode_event,
    signed_bytes,
)
from loopline_memory.domain import Environment, RunStatus, apply
from loopline_runtime import AgentProfile

ACME = SigningKey("client-acme", os.urandom(32))
BOB = SigningKey("client-bob", os.urandom(32))
RECOVERY = SigningKey("recovery", os.urandom(32))
STRANGER = SigningKey("client-acme", os.urandom(32))  # acme's name, not acme's key
RING = Keyring.of([(ACME, ["acme"]), (BOB, ["bob"]), (RECOVERY, [ANY_TENANT])])
PROFILES = {"a": AgentProfile(name="a", system_prompt="p", recall_limit=0)}
SIGNED = Environment(profiles=PROFILES, keyring=RING)
OPEN = Environment(profiles=PROFILES)


def goal(tenant: str = "acme", run_id: str = "r1") -> Envelope[GoalSubmitted]:
    return Envelope.of(
        GoalSubmitted(goal="What is 6 * 7?", agent="a"),
        run_id=run_id,
        producer="sdk",
        tenant=tenant,
    )


def command(payload: Any, tenant: str, run_id: str = "r1") -> Envelope[Any]:
    return Envelope.of(payload, run_id=run_id, producer="sdk", tenant=tenant)


def test_a_signature_survives_the_wire_and_names_its_signer() -> None:
    sent = ACME.sign(goal())
    received = decode_event(encode_event(sent))
    assert RING.verify(received) == Verified("client-acme", acts_for_any=False)
    assert received.signature is not None
    assert received.signature.key_id == "client-acme"


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (goal(), "it is not signed"),
        (STRANGER.sign(goal()), "does not match its content"),
        (SigningKey("client-eve", os.urandom(32)).sign(goal()), "unknown key 'client-eve'"),
        (BOB.sign(goal(tenant="acme")), "'client-bob' may not act for tenant 'acme'"),
    ],
    ids=["unsigned", "wrong-key", "unknown-key", "other-tenant"],
)
def test_what_the_keyring_refuses_and_why(event: Envelope[Any], why: str) -> None:
    verdict = RING.verify(event)
    assert isinstance(verdict, Refused)
    assert why in verdict.reason


def test_any_change_after_signing_breaks_the_signature() -> None:
    signed = ACME.sign(goal())
    for change in (
        {"tenant": "bob"},
        {"run_id": "r2"},
        {"payload": GoalSubmitted(goal="What is 6 * 8?", agent="a")},
    ):
        verdict = RING.verify(signed.model_copy(update=change))
        assert isinstance(verdict, Refused), change


def test_the_signed_bytes_are_canonical_json_without_the_signature() -> None:
    signed = ACME.sign(goal())
    covered = json.loads(signed_bytes(signed))
    assert "signature" not in covered
    assert covered["tenant"] == "acme"
    assert covered["payload"]["goal"] == "What is 6 * 7?"
    assert signed_bytes(signed) == signed_bytes(
        goal().model_copy(update={"event_id": signed.event_id, "occurred_at": signed.occurred_at})
    )


def test_a_keyring_file_is_read_and_a_bad_one_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    secret = base64.b64encode(ACME.secret).decode()
    path.write_text(json.dumps({"keys": {"client-acme": {"secret": secret, "acts_for": ["acme"]}}}))
    assert isinstance(Keyring.from_file(path).verify(ACME.sign(goal())), Verified)
    path.write_text(json.dumps({"keys": {"client-acme": {"secret": "c2hvcnQ=", "acts_for": []}}}))
    with pytest.raises(ValueError, match="5 bytes; a key has at least 32"):
        Keyring.from_file(path)


def test_a_goal_signed_for_its_tenant_starts_the_run() -> None:
    step = apply(None, ACME.sign(goal()), SIGNED)
    assert step.state is not None
    assert step.state.tenant == "acme"
    assert step.refusal is None


@pytest.mark.parametrize("sender", [None, BOB, STRANGER], ids=["unsigned", "bob", "forged"])
def test_a_goal_its_sender_may_not_submit_is_answered_with_a_rejection(
    sender: SigningKey | None,
) -> None:
    event = goal() if sender is None else sender.sign(goal())
    step = apply(None, event, SIGNED)
    assert step.state is None
    assert not step.changed
    assert step.refusal is not None
    rejection = step.refusal.payload
    assert isinstance(rejection, GoalRejected)
    assert rejection.reason is RejectionReason.NOT_AUTHORIZED


def test_a_refused_goal_for_a_taken_run_id_leaves_the_run_as_it_was() -> None:
    started = apply(None, ACME.sign(goal()), SIGNED).state
    assert started is not None
    step = apply(started, BOB.sign(goal()), SIGNED)
    assert step.refusal is not None
    assert not step.changed
    assert step.state == started


def test_a_fork_is_a_goal_and_needs_its_tenant_s_signature() -> None:
    fork = Envelope.of(
        RunForked(parent_run_id="r0", from_step=1, goal="g", agent="a", messages=()),
        run_id="r9",
        producer="sdk",
        tenant="acme",
    )
    assert apply(None, BOB.sign(fork.model_copy(update={"tenant": "bob"})), SIGNED).refusal is None
    assert apply(None, fork, SIGNED).refusal is not None


def test_a_tenant_cancels_its_own_run_and_not_another_s() -> None:
    started = apply(None, ACME.sign(goal()), SIGNED).state
    assert started is not None
    mine = apply(started, ACME.sign(command(CancelRun(reason="enough"), "acme")), SIGNED)
    assert mine.state is not None
    assert mine.state.status is RunStatus.CANCELLED
    # Bob signs for bob, truthfully, about acme's run: refused, dead-lettered as forbidden.
    theirs = apply(started, BOB.sign(command(CancelRun(reason="mine now"), "bob")), SIGNED)
    assert theirs.forbidden
    assert not theirs.changed
    assert "not of tenant 'bob'" in theirs.note
    unsigned = apply(started, command(CancelRun(), "acme"), SIGNED)
    assert unsigned.forbidden
    assert "not signed" in unsigned.note


def test_only_a_service_fails_a_run_even_its_tenant_s_own() -> None:
    started = apply(None, ACME.sign(goal()), SIGNED).state
    assert started is not None
    fail = FailRun(reason=FailureReason.STALLED, message="it stalled", requested_by="recovery")
    by_client = apply(started, ACME.sign(command(fail, "acme")), SIGNED)
    assert by_client.forbidden
    assert "may not fail runs" in by_client.note
    # Recovery acts for any tenant, so its command needs no knowledge of the run's.
    by_recovery = apply(started, RECOVERY.sign(command(fail, "default")), SIGNED)
    assert by_recovery.state is not None
    assert by_recovery.state.status is RunStatus.FAILED


def test_without_a_keyring_goals_and_commands_are_taken_unsigned() -> None:
    started = apply(None, goal(), OPEN).state
    assert started is not None
    cancelled = apply(started, command(CancelRun(), "acme"), OPEN)
    assert cancelled.state is not None
    assert cancelled.state.status is RunStatus.CANCELLED


def test_a_re_run_folds_recorded_goals_without_their_signatures() -> None:
    trusting = Environment(profiles=PROFILES, keyring=RING, trust_log=True)
    assert apply(None, goal(), trusting).state is not None
