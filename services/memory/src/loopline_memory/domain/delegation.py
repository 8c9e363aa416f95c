"""Sub-tasks: the `delegate(agent, goal)` tool hands part of a run's work to another agent, as
a child run; the child's end comes back as the call's result.

Memory serves the tool (the executor skips it). A `delegate` call of a decision becomes the
goal of a child run (on agent.goals, naming its parent) and a `DelegationStarted` on the
parent's observations, which tells recovery's watchdog the parent waits rather than stalls.
The child's budget is at most what the parent has left (steps, tokens, cost, time). When the
child ends, memory publishes its answer (or why it failed) as the call's result, with what it
spent, which counts against the parent's budget; when the parent ends first, its children
still running are cancelled. Everything travels as events: a replay of the parent folds its
children's results from its own log, and never starts them again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from loopline_events import (
    CONTROL,
    GOALS,
    OBSERVATIONS,
    Budget,
    CancelRun,
    Delegation,
    DelegationStarted,
    GoalSubmitted,
    Spend,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
    ToolSpec,
)
from loopline_runtime import AgentProfile

from loopline_memory.domain import budgets
from loopline_memory.domain.state import ChildRun, Emission, RunState, RunStatus

DELEGATE = "delegate"
MAX_GOAL_CHARS = 20_000
"""Longest sub-task a model may hand over."""
CHILD_NAMESPACE = uuid.UUID("0b7b1f0e-3c55-4f4e-9d1c-5d3a9e7c2a41")
CANCELLED_WITH_PARENT = "its parent run ended"

DELEGATE_SPEC = ToolSpec(
    name=DELEGATE,
    description="Hand a sub-task to another agent and wait for its final answer, which "
    "comes back as this call's result. Give it everything it needs in `goal`: it does not "
    "see this conversation.",
    parameters={
        "type": "object",
        "properties": {
            "agent": {"type": "string", "description": "The agent to hand it to."},
            "goal": {"type": "string", "description": "The sub-task, self-contained."},
        },
        "required": ["agent", "goal"],
    },
)
"""The tool as the registry knows it; a run is shown it with its own delegates (`spec_for`)."""


def spec_for(profile: AgentProfile, profiles: Mapping[str, AgentProfile]) -> ToolSpec:
    """The `delegate` tool as `profile`'s runs see it: the agents it may hand work to."""
    agents = {
        name: (profiles[name].description if name in profiles else "") or name
        for name in profile.delegates
    }
    listed = "; ".join(f"{name}: {what}" for name, what in agents.items())
    parameters: dict[str, Any] = {
        **DELEGATE_SPEC.parameters,
        "properties": {
            **DELEGATE_SPEC.parameters["properties"],
            "agent": {"type": "string", "enum": list(agents), "description": listed},
        },
    }
    return DELEGATE_SPEC.model_copy(update={"parameters": parameters})


def child_run_id(parent_run_id: str, call_id: str) -> str:
    """The child run of a `delegate` call: the same call always names the same run, so a
    decision folded again (a redelivery, a rebuild) starts no second child."""
    return f"sub-{uuid.uuid5(CHILD_NAMESPACE, f'{parent_run_id}/{call_id}').hex[:24]}"


def start(
    state: RunState,
    calls: Sequence[ToolCall],
    profiles: Mapping[str, AgentProfile],
    now: datetime,
) -> tuple[RunState, list[Emission]]:
    """The decision's `delegate` calls started: each a child's goal and the parent's wait,
    or the call's refusal as its result."""
    emissions: list[Emission] = []
    children: list[ChildRun] = []
    for call in calls:
        if call.tool != DELEGATE:
            continue
        refused = _refusal(state, call, profiles)
        if refused is not None:
            failed = ToolCallFailed(call_id=call.call_id, tool=DELEGATE, error=refused)
            emissions.append(Emission(topic=OBSERVATIONS.name, payload=failed))
            continue
        agent, goal = str(call.arguments["agent"]), str(call.arguments["goal"]).strip()
        child = ChildRun(
            call_id=call.call_id,
            run_id=child_run_id(state.run_id, call.call_id),
            agent=agent,
            step=state.step,
        )
        budget, until = _budget_left(state, profiles[agent], now)
        submitted = GoalSubmitted(
            goal=goal,
            agent=agent,
            budget=budget,
            parent=Delegation(
                parent_run_id=state.run_id,
                parent_step=state.step,
                call_id=call.call_id,
                depth=state.depth + 1,
            ),
        )
        waiting = DelegationStarted(
            call_id=call.call_id, child_run_id=child.run_id, agent=agent, until=until
        )
        emissions += [
            Emission(topic=GOALS.name, payload=submitted, run_id=child.run_id, seq=0),
            Emission(topic=OBSERVATIONS.name, payload=waiting),
        ]
        children.append(child)
    if not children:
        return state, emissions
    return state.model_copy(update={"children": (*state.children, *children)}), emissions


def _refusal(
    state: RunState, call: ToolCall, profiles: Mapping[str, AgentProfile]
) -> ToolError | None:
    profile = profiles.get(state.agent)
    agent, goal = call.arguments.get("agent"), call.arguments.get("goal")
    if call.arguments_error:
        return ToolError(kind=ToolErrorKind.INVALID_ARGUMENTS, message=call.arguments_error)
    if profile is None or not profile.delegates or DELEGATE not in state.tools:
        return ToolError(kind=ToolErrorKind.FORBIDDEN, message="this agent may not delegate")
    if not isinstance(agent, str) or agent not in profile.delegates or agent not in profiles:
        allowed = ", ".join(profile.delegates)
        return ToolError(
            kind=ToolErrorKind.INVALID_ARGUMENTS,
            message=f"agent: one of {allowed}, not {str(agent)[:100]!r}",
        )
    if not isinstance(goal, str) or not goal.strip() or len(goal) > MAX_GOAL_CHARS:
        return ToolError(
            kind=ToolErrorKind.INVALID_ARGUMENTS,
            message=f"goal: the sub-task as text, 1 to {MAX_GOAL_CHARS:,} characters",
        )
    if state.depth >= profile.max_delegation_depth:
        return ToolError(
            kind=ToolErrorKind.FORBIDDEN,
            message=f"this run is a sub-task {state.depth} deep, and its agent delegates no "
            f"deeper than {profile.max_delegation_depth}: do the work yourself",
        )
    spent = budgets.exhausted(state)
    if spent is not None or state.step >= state.max_steps:
        return ToolError(kind=ToolErrorKind.FORBIDDEN, message="no budget left for a sub-task")
    return None


def _budget_left(state: RunState, child: AgentProfile, now: datetime) -> tuple[Budget, datetime]:
    """What the parent has left, as the child's budget (a goal's budget only lowers its
    profile's), and when the child must end by."""
    tokens = (
        max(1, state.max_tokens - budgets.usage_of(state).total_tokens)
        if state.max_tokens is not None
        else None
    )
    cost = (
        max(0.0, state.max_cost_usd - budgets.cost_of(state))
        if state.max_cost_usd is not None
        else None
    )
    until = now + timedelta(seconds=child.deadline_s)
    if state.deadline_at is not None:
        until = min(until, state.deadline_at)
    deadline_s = max(1.0, (until - now).total_seconds())
    budget = Budget(
        max_steps=max(1, min(child.max_steps, state.max_steps - state.step)),
        max_tokens=tokens,
        max_cost_usd=cost,
        deadline_s=deadline_s,
    )
    return budget, until


def ended(before: RunState | None, after: RunState) -> list[Emission]:
    """What a run that just ended owes others: its parent, the call's result; its children
    still running, a cancel."""
    if after.status is RunStatus.RUNNING or (before is not None and before.finished):
        return []
    owed = [
        Emission(
            topic=CONTROL.name,
            payload=CancelRun(reason=CANCELLED_WITH_PARENT, requested_by="memory"),
            run_id=child.run_id,
            seq=0,
        )
        for child in after.children
        if not child.ended
    ]
    parent = after.delegated_by
    if parent is not None:
        owed.append(
            Emission(
                topic=OBSERVATIONS.name,
                payload=_result(after, parent.call_id),
                run_id=parent.parent_run_id,
                seq=parent.parent_step,
            )
        )
    return owed


def _result(child: RunState, call_id: str) -> ToolCallSucceeded | ToolCallFailed:
    spent = Spend(steps=child.step, usage=budgets.usage_of(child), cost_usd=budgets.cost_of(child))
    if child.status is RunStatus.COMPLETED:
        return ToolCallSucceeded(
            call_id=call_id, tool=DELEGATE, output=child.answer or "", spent=spent
        )
    how = "was cancelled" if child.status is RunStatus.CANCELLED else "failed"
    reason = f" ({child.failure.value})" if child.failure else ""
    message = f"the sub-task (run {child.run_id}, agent {child.agent}) {how}{reason}"
    if child.failure_message:
        message += f": {child.failure_message[:2_000]}"
    error = ToolError(kind=ToolErrorKind.CHILD_FAILED, message=message)
    return ToolCallFailed(call_id=call_id, tool=DELEGATE, error=error, spent=spent)


def child_of(state: RunState, call_id: str) -> ChildRun | None:
    """The running sub-task of `call_id`, if the run delegated that call."""
    return next((c for c in state.children if c.call_id == call_id and not c.ended), None)


def returned(state: RunState, outcome: ToolCallSucceeded | ToolCallFailed) -> RunState:
    """The run once its sub-task of `outcome`'s call ended: the child marked, its spend
    counted against the run's budget."""
    children = tuple(
        c.model_copy(update={"ended": True}) if c.call_id == outcome.call_id else c
        for c in state.children
    )
    spend = outcome.spent or Spend()
    total = Spend(
        steps=state.delegated.steps + spend.steps,
        usage=state.delegated.usage + spend.usage,
        cost_usd=state.delegated.cost_usd + spend.cost_usd,
    )
    return state.model_copy(update={"children": children, "delegated": total})
