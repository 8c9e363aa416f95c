"""The guards around a model call, as the planner runs them: on the messages before the model
is asked, and on its decision before it is published.

A trip answers the context instead of the decision: a `GuardTripped` on agent.decisions, with
the decision's envelope (the same causation, step and event id), so memory reads it where it
would have read the decision: on `tell` it sets the step aside and tells the model why at the
next step; on `fail` it fails the run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from loopline_events import ContextAssembled, Envelope, GuardTripped, ModelDecided
from loopline_runtime import GuardContext, Guards, Tripped

from loopline_planner.domain.requests import ModelRequest


def scope(event: Envelope[Any], context: ContextAssembled) -> GuardContext:
    """Whose step the guards look at."""
    return GuardContext(run_id=event.run_id, tenant=event.tenant, agent=context.agent)


async def guard_request(
    guards: Guards, event: Envelope[Any], context: ContextAssembled, request: ModelRequest
) -> ModelRequest | Tripped:
    """The request with the messages the guards left, or the trip that stops the step."""
    if not guards:
        return request
    messages = await guards.before_model(request.messages, scope(event, context))
    if isinstance(messages, Tripped):
        return messages
    return (
        request if messages is request.messages else dataclasses.replace(request, messages=messages)
    )


async def guard_decision(
    guards: Guards, event: Envelope[Any], context: ContextAssembled, decision: ModelDecided
) -> ModelDecided | GuardTripped:
    """What answers the context: the decision as the guards left it, or their trip."""
    if not guards:
        return decision
    guarded = await guards.after_model(decision, scope(event, context))
    if isinstance(guarded, Tripped):  # the call was made: what it spent still counts
        return guarded.event().model_copy(update={"usage": decision.usage})
    return guarded
