"""What a client checks before it decides a held call or messages a run: each refusal says
why, and a call that is pending passes (docs/decisions/0028)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from loopline_memory import reads

from loopline.sdk import CommandRefusedError, Decider, check_decision, check_steering, decision

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
OPERATOR = Decider("operator", frozenset({"*"}))
ACME = Decider("client-acme", frozenset({"acme"}))
UNKNOWN = Decider("someone")


def _held(**changes: Any) -> reads.Approval:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "tenant": "acme",
        "agent": "default",
        "run_status": "running",
        "step": 2,
        "call_id": "c1",
        "tool": "send_payment",
        "arguments": {"amount": 120},
        "policy": "effects: side_effect",
        "approvers": (),
        "until": NOW + timedelta(hours=1),
        "on_timeout": "deny",
        "requested_at": NOW,
        "decision": None,
    }
    return reads.Approval(**(fields | changes))


def _run(status: str = "running", reason: str | None = None) -> reads.RunRow:
    return reads.RunRow(
        run_id="r1",
        tenant="acme",
        agent="default",
        status=status,
        reason=reason,
        steps=2,
        goal="pay",
        answer=None,
        tokens=0,
        started_at=NOW,
        updated_at=NOW,
    )


def _refusal(
    found: reads.Approval | None, run: reads.RunRow | None, decider: Decider
) -> CommandRefusedError:
    with pytest.raises(CommandRefusedError) as refused:
        check_decision("r1", "c1", found, run, decider)
    return refused.value


def test_a_pending_call_may_be_decided_by_its_tenant_an_operator_or_an_unknown_key() -> None:
    for decider in (ACME, OPERATOR, UNKNOWN):
        assert check_decision("r1", "c1", _held(), None, decider).call_id == "c1"


def test_each_refusal_says_why() -> None:
    decided = {
        "approved": True,
        "decided_by": "alice",
        "reason": "fine",
        "decided_at": "2026-12-01T08:01:00+00:00",
    }
    cases = [
        (None, None, OPERATOR, "no_run", "memory knows no run r1"),
        (None, _run(), OPERATOR, "never_held", "call c1 of run r1 was never held for approval"),
        (
            None,
            _run("cancelled", "cancelled"),
            OPERATOR,
            "run_ended",
            "run r1 ended (cancelled, cancelled): call c1 is not held",
        ),
        (
            _held(decision=decided),
            None,
            OPERATOR,
            "decided",
            "call c1 of run r1 was already approved by alice at 2026-12-01T08:01:00+00:00: fine",
        ),
        (
            _held(run_status="failed"),
            None,
            OPERATOR,
            "run_ended",
            "run r1 ended (failed): its held call c1 was withdrawn",
        ),
        (
            _held(),
            None,
            Decider("client-globex", frozenset({"globex"})),
            "other_tenant",
            "run r1 is of tenant 'acme', which 'client-globex' does not act for",
        ),
        (
            _held(approvers=("bob",)),
            None,
            ACME,
            "not_approver",
            "call c1 of run r1 may be decided only by an operator or by bob; "
            "'client-acme' is neither",
        ),
    ]
    for found, run, decider, why, message in cases:
        refused = _refusal(found, run, decider)
        assert (refused.why, str(refused)) == (why, message)
        assert refused.retryable is False


def test_approvers_admit_their_keys_and_operators() -> None:
    found = _held(approvers=("client-acme",))
    assert check_decision("r1", "c1", found, None, ACME) is found
    assert check_decision("r1", "c1", found, None, OPERATOR) is found


def test_a_message_goes_to_a_running_run_of_the_tenant_only() -> None:
    assert check_steering("r1", _run(), ACME).run_id == "r1"
    with pytest.raises(CommandRefusedError, match="memory knows no run r1"):
        check_steering("r1", None, OPERATOR)
    with pytest.raises(CommandRefusedError, match=r"ended \(completed\): its agent reads no"):
        check_steering("r1", _run("completed"), OPERATOR)
    with pytest.raises(CommandRefusedError, match="does not act for"):
        check_steering("r1", _run(), Decider("client-globex", frozenset({"globex"})))


def test_edited_arguments_go_with_an_approval_only() -> None:
    assert decision("c1", approved=True, arguments={"amount": 100}).arguments == {"amount": 100}
    with pytest.raises(ValueError, match="not a denial"):
        decision("c1", approved=False, arguments={"amount": 100})
    with pytest.raises(ValueError, match="at most 4000"):
        decision("c1", approved=False, reason="x" * 5_000)
