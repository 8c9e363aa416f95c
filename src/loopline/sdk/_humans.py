"""People in the loop: a decision on a held tool call, a message to a running agent.

Both are commands on agent.control, signed by a key that acts for the run's tenant
(docs/decisions/0028). Memory takes the first answer to a held call and refuses the rest,
dead-lettering them with their reason; a client checks first, through memory's read API, so
that a person is told at once why (the call was decided already, never held, its run ended
or is another tenant's) instead of finding a dead letter later. The checks here are pure:
the SDK, the CLI and the gateway each read memory their own way and ask them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from loopline_events import ANY_TENANT, ApprovalDecided, Envelope, LooplineError, Payload
from loopline_memory import reads

P = TypeVar("P", bound=Payload)

Why = Literal[
    "no_run", "not_started", "other_tenant", "never_held", "decided", "run_ended", "not_approver"
]
"""Why a command was not sent: memory would refuse it."""


class CommandRefusedError(LooplineError):
    """A decision or message was not sent, since memory would refuse it; the message says why
    for a person, `why` for a program. Trying again cannot help."""

    retryable = False

    def __init__(self, message: str, *, why: Why) -> None:
        super().__init__(message)
        self.why: Why = why


@dataclass(frozen=True)
class Decider:
    """Who signs a decision or a message: a key id and the tenants it acts for, when known
    (None: unknown to the client, memory's keyring alone decides)."""

    key_id: str
    acts_for: frozenset[str] | None = None

    @property
    def acts_for_any(self) -> bool:
        """An operator's key, or a service's: it acts for every tenant."""
        return self.acts_for is not None and ANY_TENANT in self.acts_for

    def may_act_for(self, tenant: str) -> bool:
        """Whether it may act for `tenant` (True when that is unknown)."""
        return self.acts_for is None or self.acts_for_any or tenant in self.acts_for

    def may_decide(self, approvers: tuple[str, ...]) -> bool:
        """Whether it may decide a call held for `approvers` (any key of the run's tenant when
        there are none; operators' always; True when what it acts for is unknown)."""
        return (
            not approvers
            or self.key_id in approvers
            or self.acts_for is None
            or (self.acts_for_any)
        )


def check_decision(
    run_id: str,
    call_id: str,
    found: reads.Approval | None,
    run: reads.RunRow | None,
    decider: Decider,
) -> reads.Approval:
    """The held call `found` if `decider` may decide it now; CommandRefusedError saying why
    not. `run` is memory's row of the run (needed when the call was never held)."""
    tenant = found.tenant if found is not None else run.tenant if run is not None else None
    if tenant is None:
        raise CommandRefusedError(f"memory knows no run {run_id}", why="no_run")
    if not decider.may_act_for(tenant):
        raise CommandRefusedError(
            f"run {run_id} is of tenant {tenant!r}, which {decider.key_id!r} does not act for",
            why="other_tenant",
        )
    if found is None:
        assert run is not None
        if run.status != "running":
            raise CommandRefusedError(
                f"run {run_id} ended ({_ended(run.status, run.reason)}): "
                f"call {call_id} is not held",
                why="run_ended",
            )
        raise CommandRefusedError(
            f"call {call_id} of run {run_id} was never held for approval", why="never_held"
        )
    if found.decision is not None:
        raise CommandRefusedError(
            f"call {call_id} of run {run_id} was already {decided(found.decision)}", why="decided"
        )
    if found.run_status != "running":
        raise CommandRefusedError(
            f"run {run_id} ended ({found.run_status}): its held call {call_id} was withdrawn",
            why="run_ended",
        )
    if not decider.may_decide(found.approvers):
        raise CommandRefusedError(
            f"call {call_id} of run {run_id} may be decided only by an operator or by "
            f"{', '.join(found.approvers)}; {decider.key_id!r} is neither",
            why="not_approver",
        )
    return found


def check_steering(run_id: str, run: reads.RunRow | None, decider: Decider) -> reads.RunRow:
    """Memory's row of the run if `decider` may tell its agent something now;
    CommandRefusedError saying why not."""
    if run is None:
        raise CommandRefusedError(f"memory knows no run {run_id}", why="no_run")
    if not decider.may_act_for(run.tenant):
        raise CommandRefusedError(
            f"run {run_id} is of tenant {run.tenant!r}, which {decider.key_id!r} does not act for",
            why="other_tenant",
        )
    if run.status != "running":
        raise CommandRefusedError(
            f"run {run_id} ended ({_ended(run.status, run.reason)}): its agent reads no more",
            why="run_ended",
        )
    return run


def decided(decision: Mapping[str, Any]) -> str:
    """A decision as a person reads it: `approved by alice at 2026-12-01T08:00:00+00:00:
    looks fine`."""
    verb = "approved" if decision.get("approved") else "denied"
    who = decision.get("decided_by") or "someone"
    text = f"{verb} by {who} at {decision.get('decided_at')}"
    return f"{text}: {decision['reason']}" if decision.get("reason") else text


def _ended(status: str, reason: str | None) -> str:
    return f"{status}, {reason}" if reason else status


def decision(
    call_id: str,
    *,
    approved: bool,
    arguments: Mapping[str, Any] | None = None,
    reason: str = "",
    decided_by: str = "",
) -> ApprovalDecided:
    """A person's answer to a held call; `arguments` replace the model's (an approval only).
    ValueError (pydantic's ValidationError is one) when a field does not fit."""
    if arguments is not None and not approved:
        raise ValueError("edited arguments go with an approval, not a denial")
    return ApprovalDecided(
        call_id=call_id,
        approved=approved,
        arguments=dict(arguments) if arguments is not None else None,
        reason=reason,
        decided_by=decided_by,
    )


def command_event(run_id: str, command: P, *, tenant: str, producer: str = "sdk") -> Envelope[P]:
    """A command to run `run_id` (a decision, a message): publish it to agent.control, keyed
    by `run_id`, signed by a key that acts for `tenant` (the run's)."""
    return Envelope.of(command, run_id=run_id, tenant=tenant, producer=producer)
