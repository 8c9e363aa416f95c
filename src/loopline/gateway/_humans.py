"""The gateway's API of people in the loop (docs/decisions/0028): tool calls held for
approval (list, read, decide) and messages to running agents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, Query, Request
from loopline_memory import reads
from pydantic import BaseModel, ConfigDict, Field, model_validator

from loopline.gateway._access import authenticated, gateway_of
from loopline.gateway._keys import Principal

router = APIRouter(prefix="/v1")

User = Annotated[Principal, Depends(authenticated)]
APPROVALS = "approvals"


class Decision(BaseModel):
    """How a held call was decided."""

    approved: bool = Field(description="Whether it may run.")
    decided_by: str = Field(description="Who decided, as recorded.")
    reason: str = Field(description="Why; a denial's reason is what the model was told.")
    decided_at: str | None = Field(description="When memory took the decision (ISO 8601).")


class HeldCall(BaseModel):
    """A tool call held for a person's approval: waiting, decided, or withdrawn (its run
    ended before anyone decided)."""

    run_id: str = Field(description="The run whose call it is.")
    tenant: str = Field(description="The run's tenant.")
    agent: str = Field(description="The run's agent profile.")
    run_status: str = Field(description="running, completed, failed or cancelled.")
    step: int = Field(description="The step whose decision made the call.")
    call_id: str = Field(description="The call's id: decide it at .../approvals/{call_id}.")
    tool: str = Field(description="The tool it calls.")
    arguments: dict[str, Any] = Field(
        description="Its arguments, as the guards left them (secrets redacted)."
    )
    policy: str = Field(description="Why it is held.")
    approvers: list[str] = Field(
        description="Keys that may decide besides operators'; empty: any key of the tenant."
    )
    requested_at: datetime = Field(description="Since when it waits.")
    until: datetime = Field(description="When the wait ends with `on_timeout`.")
    on_timeout: str = Field(description="deny (the model is told) or fail (the run fails).")
    status: Literal["pending", "approved", "denied", "withdrawn"] = Field(
        description="Where the call stands."
    )
    decision: Decision | None = Field(description="Once decided.")

    @classmethod
    def of(cls, found: reads.Approval) -> HeldCall:
        decision = Decision.model_validate(found.decision) if found.decision else None
        status: Literal["pending", "approved", "denied", "withdrawn"]
        if decision is not None:
            status = "approved" if decision.approved else "denied"
        else:
            status = "pending" if found.pending else "withdrawn"
        return cls(
            run_id=found.run_id,
            tenant=found.tenant,
            agent=found.agent,
            run_status=found.run_status,
            step=found.step,
            call_id=found.call_id,
            tool=found.tool,
            arguments=found.arguments,
            policy=found.policy,
            approvers=list(found.approvers),
            requested_at=found.requested_at,
            until=found.until,
            on_timeout=found.on_timeout,
            status=status,
            decision=decision,
        )


class HeldCalls(BaseModel):
    """Held calls waiting for a decision, the longest waiting first."""

    approvals: list[HeldCall]


class DecideBody(BaseModel):
    """Approve a held call (optionally with edited arguments) or deny it (with a reason the
    model is shown)."""

    model_config = ConfigDict(extra="forbid")

    approved: bool = Field(description="true: the call may run; false: it never does.")
    arguments: dict[str, Any] | None = Field(
        default=None,
        description="Run it with these arguments instead of the model's (an approval only).",
    )
    reason: str = Field(
        default="", max_length=4_000, description="Why; a denial's is shown to the model."
    )

    @model_validator(mode="after")
    def _arguments_approve(self) -> Self:
        if self.arguments is not None and not self.approved:
            raise ValueError("edited arguments go with an approval, not a denial")
        return self


class DecisionSent(BaseModel):
    """A decision the gateway sent to memory (which takes the first answer to a call)."""

    run_id: str
    call_id: str
    approved: bool
    decided_by: str = Field(description="As recorded: `gateway:<API key id>`.")
    event_id: str = Field(description="Id of the `ApprovalDecided` command published.")


class MessageBody(BaseModel):
    """Something to tell a running agent: it joins the run's history as a user's message."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=20_000, description="What the agent is told.")


class MessageSent(BaseModel):
    """A message the gateway sent; the model reads it at its run's next step."""

    run_id: str
    sent_by: str = Field(description="As recorded: `gateway:<API key id>`.")
    event_id: str = Field(description="Id of the `RunSteered` command published.")


@router.get("/approvals", response_model=HeldCalls, tags=[APPROVALS])
async def list_approvals(
    request: Request, principal: User, tenant: Annotated[str | None, Query(max_length=128)] = None
) -> HeldCalls:
    """Tool calls waiting for a person's approval, the longest waiting first: the key's
    tenant's (an operator's: every tenant's, or `tenant`'s)."""
    found = await gateway_of(request).approvals(principal, tenant)
    return HeldCalls(approvals=[HeldCall.of(a) for a in found])


@router.get(
    "/runs/{run_id}/approvals/{call_id}",
    response_model=HeldCall,
    tags=[APPROVALS],
    responses={404: {"description": "no such run for this key, or the call was never held"}},
)
async def get_approval(run_id: str, call_id: str, request: Request, principal: User) -> HeldCall:
    """A held call of the run: what it asks, and whether, by whom, when and why it was
    decided."""
    return HeldCall.of(await gateway_of(request).approval(principal, run_id, call_id))


@router.post(
    "/runs/{run_id}/approvals/{call_id}",
    status_code=202,
    response_model=DecisionSent,
    tags=[APPROVALS],
    responses={
        403: {"description": "the call's policy names approvers, and this key is not one"},
        404: {"description": "no such run for this key, or the call was never held"},
        409: {"description": "not pending: decided already, or its run ended"},
    },
)
async def decide(
    run_id: str, call_id: str, body: DecideBody, request: Request, principal: User
) -> DecisionSent:
    """Approve or deny a held call: 202 once the decision is sent; memory takes it (the
    first answer to a call wins) and the run goes on. Nothing is sent when the call is not
    pending (409, saying why)."""
    sent = await gateway_of(request).decide(
        principal,
        run_id,
        call_id,
        approved=body.approved,
        arguments=body.arguments,
        reason=body.reason,
    )
    return DecisionSent(
        run_id=run_id,
        call_id=call_id,
        approved=sent.payload.approved,
        decided_by=sent.payload.decided_by,
        event_id=str(sent.event_id),
    )


@router.post(
    "/runs/{run_id}/messages",
    status_code=202,
    response_model=MessageSent,
    tags=["runs"],
    responses={
        404: {"description": "no such run for this key"},
        409: {"description": "the run ended, or has not started yet"},
    },
)
async def message(run_id: str, body: MessageBody, request: Request, principal: User) -> MessageSent:
    """Tell the run's agent something: the message joins the run's history as a user's, and
    the model reads it at its next step (202 once sent)."""
    sent = await gateway_of(request).steer(principal, run_id, body.message)
    return MessageSent(run_id=run_id, sent_by=sent.payload.sent_by, event_id=str(sent.event_id))
