"""The run inspector: server-rendered pages (htmx for the small dynamic parts) over the same
use cases as the API. Signed in with an API key, kept in an HttpOnly cookie."""

from __future__ import annotations

import contextlib
import html
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from loopline_events import Budget
from loopline_memory import reads
from loopline_recovery import dead_letters

from loopline._describe import describe, short
from loopline.gateway._access import COOKIE, gateway_of, principal_of
from loopline.gateway._core import RefusedError
from loopline.gateway._follow import Sent
from loopline.gateway._keys import Principal
from loopline.gateway._sse import event_stream, resume_point

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["short"] = short
templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)

COOKIE_MAX_AGE_S = 12 * 3600


class SignInRequiredError(Exception):
    """The page needs a key: go to the sign-in form."""


async def signed_in(request: Request) -> Principal:
    found = await principal_of(request)
    if found is None:
        raise SignInRequiredError
    return found


Viewer = Annotated[Principal, Depends(signed_in)]


def sign_in_redirect(request: Request) -> Response:
    target = f"/login?next={quote(request.url.path)}"
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def form(request: Request) -> dict[str, str]:
    """A url-encoded form's fields (the first value of each)."""
    if request.headers.get("content-type", "").split(";")[0] != (
        "application/x-www-form-urlencoded"
    ):
        raise HTTPException(415, "a form (application/x-www-form-urlencoded) is expected")
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def page(request: Request, name: str, principal: Principal | None, **context: Any) -> Response:
    return templates.TemplateResponse(
        request, name, {"principal": principal, "request": request, **context}
    )


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/ui/runs", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str = "/ui/runs") -> Response:
    return page(request, "login.html", None, next=_local(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    key, target = fields.get("key", "").strip(), _local(fields.get("next", "/ui/runs"))
    principal = await gateway_of(request).keys.verify(key) if len(key) <= 200 else None
    if principal is None:
        response = page(request, "login.html", None, next=target, error="invalid or revoked key")
        response.status_code = 401
        return response
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        max_age=COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=gateway_of(request).settings.secure_cookies,
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/ui/runs")
async def runs_page(
    request: Request,
    principal: Viewer,
    status: str = "",
    agent: str = "",
    tenant: str = "",
) -> Response:
    if status and status not in reads.STATUSES:
        raise HTTPException(400, f"status: one of {', '.join(reads.STATUSES)}")
    if tenant and not principal.may_see(tenant):
        raise HTTPException(403, "a user key lists its own tenant's runs only")
    scope = (tenant or None) if principal.is_operator else principal.tenant
    rows = await gateway_of(request).memory(
        lambda c, s: reads.list_runs(
            c, s, limit=100, tenant=scope, status=status or None, agent=agent[:128] or None
        )
    )
    agents = sorted(gateway_of(request).profiles)
    filters = {"status": status, "agent": agent, "tenant": tenant}
    return page(request, "runs.html", principal, runs=rows, agents=agents, filters=filters)


@router.post("/ui/runs")
async def submit_from_page(request: Request, principal: Viewer) -> Response:
    fields = await form(request)
    goal, agent = fields.get("goal", "").strip(), fields.get("agent", "default")
    steps = fields.get("max_steps", "").strip()
    if not goal or len(goal) > 100_000:
        raise HTTPException(400, "a goal of 1 to 100,000 characters is needed")
    if steps and (not steps.isdigit() or not 1 <= int(steps) <= 10_000):
        raise HTTPException(400, "max steps: a whole number from 1 to 10,000")
    budget = Budget(max_steps=int(steps)) if steps else None
    run_id = await gateway_of(request).submit(
        principal, goal, agent=agent, budget=budget, metadata={"via": "page"}
    )
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


async def _run_view(request: Request, principal: Principal, run_id: str) -> dict[str, Any]:
    gateway = gateway_of(request)
    run = await gateway.run(principal, run_id)
    steps = await gateway.memory(lambda c, s: reads.steps(c, s, run_id))
    held: list[reads.Approval] = []
    if run["status"] == "running":
        waiting = await gateway.approvals(principal, run["tenant"])
        held = [a for a in waiting if a.run_id == run_id]
    return {"run": run, "steps": steps, "run_id": run_id, "held": held}


@router.get("/ui/runs/{run_id}")
async def run_page(request: Request, principal: Viewer, run_id: str) -> Response:
    view = await _run_view(request, principal, run_id)
    return page(request, "run.html", principal, **view)


@router.get("/ui/runs/{run_id}/head")
async def run_head(request: Request, principal: Viewer, run_id: str) -> Response:
    view = await _run_view(request, principal, run_id)
    return page(request, "_head.html", principal, **view)


@router.get("/ui/runs/{run_id}/steps")
async def run_steps(request: Request, principal: Viewer, run_id: str) -> Response:
    view = await _run_view(request, principal, run_id)
    return page(request, "_steps.html", principal, **view)


def event_line(sent: Sent) -> str:
    """An event as one line of the page's live list (escaped HTML)."""
    label, text = describe(sent.event)
    event = sent.event
    return (
        f'<li class="ev ev-{html.escape(label)}" data-type="{html.escape(event.type)}" '
        f'data-seq="{event.seq}"><span class="seq">step {event.seq}</span> '
        f'<span class="label">{html.escape(label)}</span> {html.escape(text)}</li>'
    )


@router.get("/ui/runs/{run_id}/live")
async def run_live(request: Request, principal: Viewer, run_id: str) -> Response:
    resume = resume_point(request)
    stream = await gateway_of(request).stream(principal, run_id, resume)
    return event_stream(stream, event_line)


@router.get("/ui/runs/{run_id}/state")
async def state_page(request: Request, principal: Viewer, run_id: str, at: int = 0) -> Response:
    if at < 0 or at > 10_000:
        raise HTTPException(400, "at: a step from 1 to 10,000, or 0 for the end")
    replayed = await gateway_of(request).replay(principal, run_id, at or None)
    assert replayed.state is not None
    state = replayed.state
    return page(
        request,
        "state.html",
        principal,
        run_id=run_id,
        at=at,
        state=state,
        folded=replayed.folded,
        messages=[_message_view(m) for m in state.messages],
    )


@router.post("/ui/runs/{run_id}/fork")
async def fork_from_page(request: Request, principal: Viewer, run_id: str) -> Response:
    fields = await form(request)
    step = fields.get("from_step", "")
    if not step.isdigit() or not 1 <= int(step) <= 10_000:
        raise HTTPException(400, "fork from: a step from 1 to 10,000")
    child = await gateway_of(request).fork(
        principal,
        run_id,
        from_step=int(step),
        agent=fields.get("agent") or None,
        model=fields.get("model") or None,
        system_prompt=fields.get("system_prompt") or None,
    )
    return RedirectResponse(f"/ui/runs/{child}", status_code=303)


@router.post("/ui/runs/{run_id}/cancel")
async def cancel_from_page(request: Request, principal: Viewer, run_id: str) -> Response:
    fields = await form(request)
    await gateway_of(request).cancel(principal, run_id, fields.get("reason", "")[:2000])
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.post("/ui/runs/{run_id}/approvals/{call_id}")
async def decide_from_page(
    request: Request, principal: Viewer, run_id: str, call_id: str
) -> Response:
    fields = await form(request)
    if fields.get("decision") not in ("approve", "deny"):
        raise HTTPException(400, "decision: approve or deny")
    await gateway_of(request).decide(
        principal,
        run_id,
        call_id,
        approved=fields["decision"] == "approve",
        arguments=None,
        reason=fields.get("reason", "")[:4000],
    )
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.post("/ui/runs/{run_id}/messages")
async def message_from_page(request: Request, principal: Viewer, run_id: str) -> Response:
    fields = await form(request)
    message = fields.get("message", "").strip()
    if not 0 < len(message) <= 20_000:
        raise HTTPException(400, "a message of 1 to 20,000 characters is needed")
    await gateway_of(request).steer(principal, run_id, message)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.get("/ui/runs/{run_id}/rerun")
async def rerun_page(request: Request, principal: Viewer, run_id: str) -> Response:
    report = await gateway_of(request).rerun(principal, run_id)
    return page(request, "rerun.html", principal, run_id=run_id, report=report)


async def _operator(request: Request) -> Principal:
    principal = await signed_in(request)
    if not principal.is_operator:
        raise HTTPException(403, "operators only: this key's role is user")
    return principal


OperatorViewer = Annotated[Principal, Depends(_operator)]


@router.get("/ui/dead-letters")
async def dead_letters_page(
    request: Request, principal: OperatorViewer, status: str = ""
) -> Response:
    if status and status not in dead_letters.STATUSES:
        raise HTTPException(400, f"status: one of {', '.join(dead_letters.STATUSES)}")
    rows = await gateway_of(request).recovery(
        lambda c, s: dead_letters.list_dead_letters(c, s, status=status or None, limit=200)
    )
    return page(request, "dead_letters.html", principal, letters=rows, status=status)


async def _letter_row(
    request: Request, principal: Principal, letter_id: str, *, pending: bool = False
) -> Response:
    found = await gateway_of(request).recovery(lambda c, s: dead_letters.find(c, s, letter_id))
    exact = [d.row for d in found if str(d.row.event_id) == letter_id.lower()]
    if not exact:
        raise HTTPException(404, f"no dead letter {letter_id}")
    return page(request, "_dead_letter_row.html", principal, d=exact[0], pending=pending)


@router.get("/ui/dead-letters/{letter_id}/row")
async def dead_letter_row(
    request: Request, principal: OperatorViewer, letter_id: str, pending: bool = False
) -> Response:
    return await _letter_row(request, principal, letter_id, pending=pending)


@router.post("/ui/dead-letters/{letter_id}/redrive")
async def redrive_from_page(
    request: Request, principal: OperatorViewer, letter_id: str
) -> Response:
    with contextlib.suppress(RefusedError):  # not parked (any more): the row shows what it is
        await gateway_of(request).redrive(principal, letter_id)
    return await _letter_row(request, principal, letter_id, pending=True)


def _message_view(message: Any) -> dict[str, str]:
    if message.tool_calls:
        text = ", ".join(f"{c.tool}({json.dumps(c.arguments)})" for c in message.tool_calls)
    elif message.artifact is not None:
        text = f"(stored as {message.artifact.ref}, {message.artifact.chars} characters)"
    else:
        text = message.content
    return {"role": message.role, "text": text}


def _local(target: str) -> str:
    """A path on this gateway (never an open redirect elsewhere)."""
    return target if target.startswith("/") and not target.startswith("//") else "/ui/runs"


__all__ = ["HTMLResponse", "SignInRequiredError", "router", "sign_in_redirect"]
