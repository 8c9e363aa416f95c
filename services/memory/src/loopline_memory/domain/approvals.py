"""Held calls: a tool call that waits for a person's approval (docs/decisions/0028).

The tool-executor holds a call its agent's policy names and says so (`ApprovalRequested`);
the call stays pending in the step, listed in the run's `held` calls. A person's answer
(`ApprovalDecided`, a signed command on agent.control) is taken once: an approval becomes a
`ToolCallApproved` for the executor, whose result then answers it; a denial is the call's
result at once, which the model reads. Pure, like the reducer that calls it.
"""

from __future__ import annotations

from typing import Any

from loopline_events import (
    DECISIONS,
    OBSERVATIONS,
    ApprovalDecided,
    ApprovalRequested,
    Envelope,
    ToolCall,
    ToolCallApproved,
    ToolCallFailed,
    ToolError,
    ToolErrorKind,
    derived_id,
)

from loopline_memory.domain.state import DecidedCall, Emission, HeldCall, Phase, RunState

PRODUCER = "memory"


def hold(state: RunState, event: Envelope[Any], request: ApprovalRequested) -> RunState | str:
    """The state with the call held; a note saying why not when the request is stale (its
    step is over, the call has its result or was decided: an executor re-publishing its
    answer to a redelivered decision)."""
    call = request.call_id
    if event.seq != state.step:
        return f"approval request of step {event.seq}, not the current one"
    if any(h.call_id == call for h in state.held) or decided(state, call) is not None:
        return f"approval request of {call}, held or decided already"
    awaiting = state.phase is Phase.DECISION or call in state.pending_calls
    if not awaiting:
        return f"approval request of a call not pending ({call})"
    held = HeldCall(
        call_id=call,
        tool=request.tool,
        arguments=request.arguments,
        effect=request.effect,
        policy=request.policy,
        approvers=request.approvers,
        until=request.until,
        on_timeout=request.on_timeout,
        step=state.step,
        requested_at=event.occurred_at,
    )
    return state.model_copy(update={"held": (*state.held, held)})


def held(state: RunState, call_id: str) -> HeldCall | None:
    return next((h for h in state.held if h.call_id == call_id), None)


def decided(state: RunState, call_id: str) -> DecidedCall | None:
    """The decision on `call_id` in the current step, if it was held and decided."""
    return next(
        (d for d in state.decided if d.call_id == call_id and d.request.step == state.step), None
    )


def not_held(state: RunState, call_id: str) -> str:
    """Why an answer about `call_id` finds nothing to decide, for the one who sent it."""
    earlier = next((d for d in reversed(state.decided) if d.call_id == call_id), None)
    if earlier is not None:
        verb = "approved" if earlier.approved else "denied"
        who = f" by {earlier.decided_by}" if earlier.decided_by else ""
        return f"call {call_id} was {verb}{who} already, at {earlier.decided_at.isoformat()}"
    return f"call {call_id} is not waiting for approval (run {state.run_id} never held it)"


def may_decide(request: HeldCall, key_id: str, acts_for_any: bool) -> str | None:
    """Why the key may not decide on the held call (None: it may)."""
    if acts_for_any or not request.approvers or key_id in request.approvers:
        return None
    return f"key {key_id!r} is not among the call's approvers ({', '.join(request.approvers)})"


def decide(
    state: RunState, event: Envelope[Any], answer: ApprovalDecided, agent: str
) -> tuple[RunState, tuple[Emission, ...], ToolCallFailed | None]:
    """Take the answer to a held call: the state, what to emit, and (for a denial) the call's
    result, which the reducer folds at once as if it had come back."""
    request = held(state, answer.call_id)
    assert request is not None
    approved = answer.approved
    approval_id = derived_id(event.event_id, PRODUCER, 0) if approved else None
    record = DecidedCall(
        request=request,
        approved=approved,
        decided_by=answer.decided_by,
        reason=answer.reason,
        decided_at=event.occurred_at,
        approval_id=approval_id,
    )
    state = state.model_copy(
        update={
            "held": tuple(h for h in state.held if h.call_id != answer.call_id),
            "decided": (*state.decided, record),
        }
    )
    if approved:
        arguments = request.arguments if answer.arguments is None else answer.arguments
        call = ToolCall(call_id=request.call_id, tool=request.tool, arguments=arguments)
        go = ToolCallApproved(agent=agent, call=call, decided_by=answer.decided_by)
        return state, (Emission(topic=DECISIONS.name, payload=go),), None
    error = ToolError(kind=ToolErrorKind.DENIED, message=denial(answer))
    failed = ToolCallFailed(call_id=request.call_id, tool=request.tool, error=error)
    return state, (Emission(topic=OBSERVATIONS.name, payload=failed),), failed


def denial(answer: ApprovalDecided) -> str:
    """What the model reads of a denial."""
    who = answer.decided_by or "a person"
    why = f": {answer.reason}" if answer.reason else ""
    return f"{who} did not approve this call{why}"
