"""The run reducer: a pure, idempotent fold of a run's events into its state.

`apply(state, event, env)` returns the next state and the events to emit. It reads no clock
(time comes from the events), so replaying a run's events rebuilds exactly the same state.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from loopline_events import (
    CONTEXTS,
    RESULTS,
    CancelRun,
    ContextAssembled,
    Envelope,
    FailureReason,
    GoalSubmitted,
    Message,
    ModelDecided,
    ModelFailed,
    RunCancelled,
    RunCompleted,
    RunFailed,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolSpec,
)
from loopline_runtime import AgentProfile

from loopline_memory.domain.state import Emission, Phase, RunState, RunStatus


@dataclass(frozen=True)
class Environment:
    """What the reducer may consult besides the events: profiles and tool schemas."""

    profiles: Mapping[str, AgentProfile]
    tools: Mapping[str, ToolSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """The outcome of folding one event."""

    state: RunState | None
    emissions: tuple[Emission, ...] = ()
    note: str = ""
    """Why the event changed nothing, when it did not (for logs)."""

    @property
    def changed(self) -> bool:
        return not self.note


def apply(state: RunState | None, event: Envelope[Any], env: Environment) -> Step:
    """Fold `event` into `state`."""
    if state is not None and str(event.event_id) in state.applied:
        return Step(state, note="duplicate event")
    payload = event.payload
    if isinstance(payload, GoalSubmitted):
        if state is not None:
            return Step(state, note="run already exists")
        return _start(event, payload, env)
    if state is None:
        return Step(None, note=f"{event.type} for an unknown run")
    if state.finished:
        return Step(state, note=f"{event.type} after the run ended")
    if state.deadline_at is not None and event.occurred_at > state.deadline_at:
        return _fail(state, event, FailureReason.DEADLINE, "the run passed its deadline")
    if isinstance(payload, CancelRun):
        return _cancel(state, event, payload)
    if isinstance(payload, ModelDecided):
        return _decided(state, event, payload, env)
    if isinstance(payload, ModelFailed):
        if event.seq != state.step or state.phase is not Phase.DECISION:
            return Step(state, note="stale model failure")
        return _fail(state, event, FailureReason.MODEL_ERROR, payload.error)
    if isinstance(payload, ToolCallSucceeded | ToolCallFailed):
        return _observed(state, event, payload, env)
    return Step(state, note=f"memory does not fold {event.type}")


def _touch(state: RunState, event: Envelope[Any], **changes: Any) -> RunState:
    applied = list(state.applied)
    bisect.insort(applied, str(event.event_id))
    updated = max(state.updated_at, event.occurred_at)
    return state.model_copy(update={"applied": tuple(applied), "updated_at": updated, **changes})


def _start(event: Envelope[Any], goal: GoalSubmitted, env: Environment) -> Step:
    profile = env.profiles.get(goal.agent)
    budget = goal.budget
    deadline_s = budget.deadline_s or (profile.deadline_s if profile else None)
    state = RunState(
        run_id=event.run_id,
        tenant=event.tenant,
        agent=goal.agent,
        goal=goal.goal,
        model=profile.model if profile else "",
        tools=profile.tools if profile else (),
        max_steps=budget.max_steps or (profile.max_steps if profile else 1),
        deadline_at=event.occurred_at + timedelta(seconds=deadline_s) if deadline_s else None,
        started_at=event.occurred_at,
        updated_at=event.occurred_at,
        applied=(str(event.event_id),),
    )
    if profile is None:
        known = ", ".join(sorted(env.profiles)) or "none"
        return _fail(
            state,
            None,
            FailureReason.INVALID_GOAL,
            f"unknown agent profile {goal.agent!r} (known: {known})",
        )
    messages = (
        Message(role="system", content=profile.system_prompt),
        Message(role="user", content=goal.goal),
    )
    return _next_context(state.model_copy(update={"messages": messages}), env)


def _next_context(state: RunState, env: Environment) -> Step:
    """Assemble the next step's context, unless the run is out of steps."""
    if state.step >= state.max_steps:
        return _fail(
            state,
            None,
            FailureReason.MAX_STEPS,
            f"the run used its {state.max_steps} steps without a final answer",
        )
    state = state.model_copy(update={"step": state.step + 1, "phase": Phase.DECISION})
    context = ContextAssembled(
        agent=state.agent,
        model=state.model,
        messages=state.messages,
        tools=tuple(env.tools[name] for name in state.tools if name in env.tools),
    )
    return Step(state, (Emission(topic=CONTEXTS.name, payload=context),))


def _decided(
    state: RunState, event: Envelope[Any], decision: ModelDecided, env: Environment
) -> Step:
    if event.seq != state.step or state.phase is not Phase.DECISION:
        return Step(state, note=f"stale decision for step {event.seq}")
    usage = state.usage + decision.usage
    if decision.final_answer is not None:
        answer = Message(role="assistant", content=decision.final_answer)
        done = _touch(
            state,
            event,
            messages=(*state.messages, answer),
            usage=usage,
            status=RunStatus.COMPLETED,
            phase=Phase.DONE,
            answer=decision.final_answer,
        )
        result = RunCompleted(answer=decision.final_answer, steps=state.step, usage=usage)
        return Step(done, (Emission(topic=RESULTS.name, payload=result),))
    asked = Message(role="assistant", tool_calls=decision.tool_calls)
    calls = tuple(c.call_id for c in decision.tool_calls)
    waiting = _touch(
        state,
        event,
        messages=(*state.messages, asked),
        usage=usage,
        phase=Phase.OBSERVATIONS,
        calls=calls,
        received=tuple(m for m in state.received if m.tool_call_id in calls),
    )
    return _maybe_next(waiting, env)


def _observed(
    state: RunState,
    event: Envelope[Any],
    outcome: ToolCallSucceeded | ToolCallFailed,
    env: Environment,
) -> Step:
    known = {m.tool_call_id for m in state.received}
    awaiting = state.phase is Phase.DECISION or outcome.call_id in state.pending_calls
    if event.seq != state.step or outcome.call_id in known or not awaiting:
        return Step(state, note=f"result of a call not pending ({outcome.call_id})")
    if isinstance(outcome, ToolCallSucceeded):
        content = outcome.output
    else:
        content = f"error ({outcome.error.kind.value}): {outcome.error.message}"
    observed = Message(role="tool", content=content, tool_call_id=outcome.call_id)
    received = tuple(sorted((*state.received, observed), key=lambda m: m.tool_call_id or ""))
    return _maybe_next(_touch(state, event, received=received), env)


def _maybe_next(state: RunState, env: Environment) -> Step:
    """Once every call of the decision has its result, move on to the next step."""
    if state.phase is not Phase.OBSERVATIONS or state.pending_calls:
        return Step(state)
    by_call = {m.tool_call_id: m for m in state.received}
    results = tuple(by_call[c] for c in state.calls)  # in the order the model asked
    done = state.model_copy(
        update={"messages": (*state.messages, *results), "calls": (), "received": ()}
    )
    return _next_context(done, env)


def _fail(
    state: RunState, event: Envelope[Any] | None, reason: FailureReason, message: str
) -> Step:
    if event is not None:
        state = _touch(state, event)
    failed = state.model_copy(
        update={
            "status": RunStatus.FAILED,
            "phase": Phase.DONE,
            "failure": reason,
            "failure_message": message,
        }
    )
    result = RunFailed(reason=reason, message=message, steps=state.step, usage=state.usage)
    return Step(failed, (Emission(topic=RESULTS.name, payload=result),))


def _cancel(state: RunState, event: Envelope[Any], command: CancelRun) -> Step:
    cancelled = _touch(state, event, status=RunStatus.CANCELLED, phase=Phase.DONE)
    result = RunCancelled(reason=command.reason, steps=state.step)
    return Step(cancelled, (Emission(topic=RESULTS.name, payload=result),))
