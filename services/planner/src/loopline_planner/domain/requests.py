"""What a step asks of its models, from the run's context and profile: pure, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopline_events import ContextAssembled, Envelope, Message, ToolSpec
from loopline_runtime import PRICE_TABLE, AgentProfile

CHARS_PER_TOKEN = 4
"""A rough count, as memory's context window uses: enough to reserve tokens per minute."""


@dataclass(frozen=True)
class ModelRequest:
    """What one step asks of a model: built by the planner from the run's context, so that no
    adapter depends on how contexts travel.

    `run_id`, `step` and `tenant` say whose step it is (for rate limits, quotas and the tags of
    streamed text); the adapters send `messages` and `tools` to `model`.
    """

    agent: str
    model: str
    """The model id, as profiles name it: `demo`, `openai:<name>`, `anthropic:<name>`."""
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    run_id: str = ""
    step: int = 0
    tenant: str = "default"

    def to(self, model: str) -> ModelRequest:
        """The same request, for another model (a fallback)."""
        return ModelRequest(
            self.agent, model, self.messages, self.tools, self.run_id, self.step, self.tenant
        )


def request_for(
    event: Envelope[Any], context: ContextAssembled, messages: tuple[Message, ...]
) -> ModelRequest:
    """The request of the step `event` carries, for the context's model: `messages` (the run's
    history through the context's window); a summary offers no tool."""
    return ModelRequest(
        agent=context.agent,
        model=context.model,
        messages=messages,
        tools=context.tools if context.purpose == "step" else (),
        run_id=event.run_id,
        step=event.seq,
        tenant=event.tenant,
    )


def models_for(model: str, profile: AgentProfile | None) -> tuple[str, ...]:
    """The models to ask, in order: the context's, then its profile's fallbacks (once each)."""
    chain = [model]
    for fallback in profile.fallback_models if profile is not None else ():
        if fallback not in chain:
            chain.append(fallback)
    return tuple(chain)


def known_models(profiles: Mapping[str, AgentProfile]) -> frozenset[str]:
    """The models the planner calls: those the profiles name, first or as a fallback, and
    those the price table prices (a fork may ask for one, and its cost counts against budgets
    and quotas). A context naming any other is forged or misrouted."""
    named = (m for p in profiles.values() for m in (p.model, *p.fallback_models))
    return frozenset(PRICE_TABLE).union(named)


def estimated_tokens(request: ModelRequest) -> int:
    """About how many tokens the request reads: its text, four characters a token."""
    chars = sum(m.text_chars for m in request.messages)
    chars += sum(
        len(t.name) + len(t.description) + len(json.dumps(t.parameters)) for t in request.tools
    )
    return chars // CHARS_PER_TOKEN + 4 * len(request.messages)
