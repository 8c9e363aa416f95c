"""The gateway's HTTP API, `/v1`: runs (submit, list, read, follow, cancel, replay, re-run,
fork) for a tenant's key, and dead letters for an operator's."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from loopline_events import Budget
from loopline_memory import reads
from loopline_memory.history import NoGoalError, StepNotReachedError
from loopline_recovery import dead_letters
from pydantic import BaseModel, ConfigDict, Field

from loopline.gateway._access import authenticated, gateway_of, operator
from loopline.gateway._core import NotFoundError, RefusedError
from loopline.gateway._keys import Principal
from loopline.gateway._sse import as_json, event_stream, resume_point

router = APIRouter(prefix="/v1")

User = Annotated[Principal, Depends(authenticated)]
Operator = Annotated[Principal, Depends(operator)]
RUN_ID = r"^[^/]{1,128}$"


class SubmitGoal(BaseModel):
    """A goal for an agent: a new run, in the tenant of the key that asks."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=100_000, description="What the agent should do.")
    agent: str = Field(default="default", min_length=1, max_length=128, description="Profile.")
    budget: Budget | None = Field(default=None, description="Limits lower than the profile's.")
    metadata: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Free-form labels carried with the run."
    )
    tenant: str | None = Field(
        default=None,
        max_length=128,
        description="Ignored: a run's tenant is always the tenant of the key that submits it.",
    )


class RunAccepted(BaseModel):
    """A run the gateway accepted: follow it at `events`, read it at `run`."""

    run_id: str
    tenant: str
    links: dict[str, str]


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2_000, description="Why (recorded on the run).")


class ForkBody(BaseModel):
    """Fork a run after step `from_step`: its first steps are copied, the rest runs live."""

    model_config = ConfigDict(extra="forbid")

    from_step: int = Field(ge=1, le=10_000, description="Copy steps 1..from_step.")
    agent: str | None = Field(default=None, max_length=128, description="Another profile.")
    model: str | None = Field(default=None, max_length=200, description="Another model.")
    system_prompt: str | None = Field(default=None, max_length=100_000, description="Prompt.")


def _accepted(run_id: str, tenant: str) -> JSONResponse:
    links = {
        "run": f"/v1/runs/{run_id}",
        "events": f"/v1/runs/{run_id}/events",
        "page": f"/ui/runs/{run_id}",
    }
    body = RunAccepted(run_id=run_id, tenant=tenant, links=links)
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": links["run"]})


@router.post("/runs", status_code=202, response_model=RunAccepted, tags=["runs"])
async def submit(
    body: SubmitGoal,
    request: Request,
    principal: User,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Submit a goal: 202 with the new run's id. The run's tenant is the key's (a `tenant` in
    the body is ignored). The same `Idempotency-Key` from the same key names the same run."""
    run_id = await gateway_of(request).submit(
        principal,
        body.goal,
        agent=body.agent,
        budget=body.budget,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
    )
    return _accepted(run_id, principal.tenant)


@router.get("/runs", tags=["runs"])
async def list_runs(
    request: Request,
    principal: User,
    status: Annotated[str | None, Query(pattern="^(running|completed|failed|cancelled)$")] = None,
    agent: Annotated[str | None, Query(max_length=128)] = None,
    tenant: Annotated[str | None, Query(max_length=128)] = None,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The latest runs, newest first: the key's tenant's (an operator's: every tenant's, or
    `tenant`'s). `before` (a run's `started_at`) pages back."""
    if tenant is not None and not principal.may_see(tenant):
        raise HTTPException(403, "a user key lists its own tenant's runs only")
    scope = tenant if principal.is_operator else principal.tenant
    rows = await gateway_of(request).memory(
        lambda c, s: reads.list_runs(
            c, s, limit=limit, tenant=scope, status=status, agent=agent, before=before
        )
    )
    return {"runs": [_jsonable(dataclasses.asdict(r)) for r in rows]}


@router.get("/runs/{run_id}", tags=["runs"])
async def get_run(run_id: str, request: Request, principal: User) -> dict[str, Any]:
    """The run's status, outcome (answer, or reason and message), usage and limits."""
    return await gateway_of(request).run(principal, run_id)


@router.get("/runs/{run_id}/steps", tags=["runs"])
async def get_steps(run_id: str, request: Request, principal: User) -> dict[str, Any]:
    """The run step by step: context size, decision, tool calls and outputs, tokens, cost,
    durations."""
    gateway = gateway_of(request)
    await gateway.visible_run(principal, run_id)
    steps = await gateway.memory(lambda c, s: reads.steps(c, s, run_id))
    return {
        "run_id": run_id,
        "steps": [_jsonable(dataclasses.asdict(s) | {"duration_s": s.duration_s}) for s in steps],
    }


@router.get("/runs/{run_id}/timeline", tags=["runs"])
async def get_timeline(run_id: str, request: Request, principal: User) -> dict[str, Any]:
    """Every event memory recorded of the run, in order."""
    gateway = gateway_of(request)
    await gateway.visible_run(principal, run_id)
    rows = await gateway.memory(lambda c, s: reads.timeline(c, s, run_id))
    return {"run_id": run_id, "events": [_jsonable(dataclasses.asdict(r)) for r in rows]}


@router.get(
    "/runs/{run_id}/events",
    tags=["runs"],
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}}, 204: {"description": "ended"}},
)
async def follow(run_id: str, request: Request, principal: User) -> Response:
    """The run's events as Server-Sent Events, from its start (or after `Last-Event-ID`)
    until its end: each message's data is an event's envelope (with its `topic`), its id a
    cursor to resume from; an `end` event closes the stream. Resuming after the run's end
    answers 204."""
    resume = resume_point(request)
    stream = await gateway_of(request).stream(principal, run_id, resume)
    return event_stream(stream, as_json)


@router.post("/runs/{run_id}/cancel", status_code=202, tags=["runs"])
async def cancel(
    run_id: str, request: Request, principal: User, body: CancelBody | None = None
) -> dict[str, Any]:
    """Ask the run to stop at its next step (it ends `cancelled`)."""
    await gateway_of(request).cancel(principal, run_id, body.reason if body else "")
    return {"run_id": run_id, "cancel_requested": True}


@router.get("/runs/{run_id}/state", tags=["history"])
async def state(
    run_id: str,
    request: Request,
    principal: User,
    at_step: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> dict[str, Any]:
    """The run's state rebuilt from the log through memory's reducer, at its end or where
    step `at_step` began (what the agent knew then)."""
    replayed = await gateway_of(request).replay(principal, run_id, at_step)
    assert replayed.state is not None
    return {
        "run_id": run_id,
        "at_step": at_step,
        "events_folded": replayed.folded,
        "state": json.loads(replayed.state.model_dump_json()),
    }


@router.post("/runs/{run_id}/rerun", tags=["history"])
async def rerun(run_id: str, request: Request, principal: User) -> dict[str, Any]:
    """Re-run from the recorded decisions and tool results (no model or tool is called,
    nothing is published) and report where today's rules diverge from the original."""
    report = await gateway_of(request).rerun(principal, run_id)
    return dataclasses.asdict(report) | {"diverged": report.diverged}


@router.post("/runs/{run_id}/fork", status_code=202, response_model=RunAccepted, tags=["history"])
async def fork(run_id: str, body: ForkBody, request: Request, principal: User) -> Response:
    """A new run with the first `from_step` steps of this one, copied; it goes on live (with
    another agent, model or prompt if asked), in the same tenant."""
    gateway = gateway_of(request)
    child = await gateway.fork(
        principal,
        run_id,
        from_step=body.from_step,
        agent=body.agent,
        model=body.model,
        system_prompt=body.system_prompt,
    )
    return _accepted(child, await gateway.visible_run(principal, run_id))


@router.get("/dead-letters", tags=["operators"])
async def list_dead_letters(
    request: Request,
    principal: Operator,
    run_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(pattern="^(retrying|parked|redriven)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Messages a service could not handle, newest first (operators only)."""
    rows = await gateway_of(request).recovery(
        lambda c, s: dead_letters.list_dead_letters(c, s, run_id=run_id, status=status, limit=limit)
    )
    return {"dead_letters": [_jsonable(dataclasses.asdict(r)) for r in rows]}


@router.get("/dead-letters/{letter_id}", tags=["operators"])
async def get_dead_letter(letter_id: str, request: Request, principal: Operator) -> dict[str, Any]:
    """One dead letter whole, its original bytes in base64 (operators only)."""
    found = await gateway_of(request).recovery(lambda c, s: dead_letters.find(c, s, letter_id))
    exact = [d for d in found if str(d.row.event_id) == letter_id.lower()]
    if not exact:
        raise NotFoundError(letter_id)
    return exact[0].as_json()


@router.post("/dead-letters/{letter_id}/redrive", status_code=202, tags=["operators"])
async def redrive(letter_id: str, request: Request, principal: Operator) -> dict[str, Any]:
    """Ask recovery to re-publish a parked dead letter to its source topic (operators only);
    its status turns `redriven` once recovery has."""
    await gateway_of(request).redrive(principal, letter_id)
    return {"dead_letter_id": letter_id, "redrive_requested": True}


@router.get("/whoami", tags=["keys"])
async def whoami(principal: User) -> dict[str, str]:
    """The tenant and role of the key used."""
    return {"key_id": principal.key_id, "tenant": principal.tenant, "role": principal.role.value}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


ERRORS: dict[type[Exception], int] = {
    NotFoundError: 404,
    StepNotReachedError: 404,
    NoGoalError: 409,
    RefusedError: 400,
}
