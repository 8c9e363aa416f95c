"""Forks: a new run that starts from another run's first steps, and the lineage of both."""

from __future__ import annotations

from pydantic import Field

from loopline_events._envelope import Payload
from loopline_events._runs import Budget
from loopline_events._steps import Message, TokenUsage


class RunForked(Payload):
    """Start a run from the first `from_step` steps of another (on agent.goals, keyed by the
    new run): those steps are copied, not re-done; the run goes on live from the next one."""

    TYPE = "RunForked"

    parent_run_id: str = Field(min_length=1, max_length=128, description="The run forked.")
    from_step: int = Field(ge=1, description="Steps 1..from_step are copied from the parent.")
    goal: str = Field(min_length=1, description="The parent's goal.")
    agent: str = Field(default="default", min_length=1, description="Agent profile of the fork.")
    model: str | None = Field(default=None, description="Model instead of the profile's.")
    system_prompt: str | None = Field(default=None, description="Prompt instead of the profile's.")
    messages: tuple[Message, ...] = Field(description="The parent's conversation so far.")
    usage: TokenUsage = Field(default_factory=TokenUsage, description="What those steps spent.")
    budget: Budget = Field(default_factory=Budget, description="Limits overriding the profile's.")


class ForkRecorded(Payload):
    """A fork was made of this run (on agent.control, keyed by the parent): its lineage."""

    TYPE = "ForkRecorded"

    child_run_id: str = Field(min_length=1, max_length=128, description="The fork's run id.")
    from_step: int = Field(ge=1, description="The step it was forked after.")
