"""Events of people in the loop and of the policies around calls: approvals, steering, guards.

An approval is a wait memory holds (docs/decisions/0028): the tool-executor publishes an
`ApprovalRequested` for a call its agent's profile holds for approval, instead of running it;
a person answers with `ApprovalDecided` on agent.control (signed, like every command); memory
folds the answer and, for an approval, hands the call to the executor as `ToolCallApproved`
on agent.decisions: the executor runs a held call only from that event, never from the
model's decision alone. A denial is the call's result, which the model reads.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from loopline_events._envelope import Payload
from loopline_events._steps import TokenUsage, ToolCall

OnTimeout = Literal["deny", "fail"]


class ApprovalRequested(Payload):
    """A tool call waits for a person's approval before it runs (on agent.observations, by the
    tool-executor, answering the step's decision). The run waits, it is not stalled, until
    `until`; then `on_timeout` applies (recovery's watchdog carries it out)."""

    TYPE = "ApprovalRequested"

    call_id: str = Field(description="The held call.")
    tool: str = Field(description="Name of the tool.")
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="The call's arguments, as the guards left them (a secret is redacted "
        "before a person sees it).",
    )
    effect: str = Field(description="The tool's effect class: pure, idempotent, side_effect.")
    policy: str = Field(default="", max_length=500, description="Why the call is held.")
    approvers: tuple[str, ...] = Field(
        default=(),
        description="Key ids that may decide, besides operators'; empty: any key that acts "
        "for the run's tenant.",
    )
    until: AwareDatetime = Field(description="When the wait ends with `on_timeout`.")
    on_timeout: OnTimeout = Field(
        default="deny",
        description="`deny`: the model is told no one approved; `fail`: the run fails.",
    )


class ApprovalDecided(Payload):
    """A person's answer to an `ApprovalRequested` (a command, on agent.control, signed by a
    key that acts for the run's tenant). Memory takes the first answer to a pending call; any
    other is refused with its reason."""

    TYPE = "ApprovalDecided"

    call_id: str = Field(min_length=1, max_length=128, description="The held call.")
    approved: bool = Field(description="Whether the call may run.")
    arguments: dict[str, Any] | None = Field(
        default=None,
        description="Arguments to run the call with instead of the model's (approvals only).",
    )
    reason: str = Field(
        default="", max_length=4_000, description="Why; a denial's reason is shown to the model."
    )
    decided_by: str = Field(default="", max_length=128, description="Who decided (free text).")


class ToolCallApproved(Payload):
    """A held call was approved: the tool-executor runs it now (on agent.decisions, by memory
    alone). Its result answers this event."""

    TYPE = "ToolCallApproved"

    agent: str = Field(description="Agent profile of the run.")
    call: ToolCall = Field(description="The call, with the arguments it runs with.")
    decided_by: str = Field(default="", max_length=128, description="Who approved it.")


class RunSteered(Payload):
    """A person tells a running agent something (a command, on agent.control, signed): memory
    adds it to the run's history as a user message, which the model reads at its next step."""

    TYPE = "RunSteered"

    message: str = Field(min_length=1, max_length=20_000, description="What the agent is told.")
    sent_by: str = Field(default="", max_length=128, description="Who said it (free text).")


class GuardHook(StrEnum):
    """Where a guard looked."""

    BEFORE_MODEL = "before_model"
    AFTER_MODEL = "after_model"
    BEFORE_TOOL = "before_tool"
    AFTER_TOOL = "after_tool"


class GuardTripped(Payload):
    """A guard stopped something (on the topic of what it guarded: agent.decisions for the
    model's hooks, by the planner; agent.observations for the tools', by the tool-executor).

    `action` says what follows: `tell`, the model is told (a tool hook's call fails with the
    guard's reason; a model hook's decision is set aside and the model asked again, told why);
    `fail`, memory fails the run with reason `guard`.
    """

    TYPE = "GuardTripped"

    guard: str = Field(max_length=128, description="The guard's name.")
    hook: GuardHook = Field(description="Where it tripped.")
    reason: str = Field(max_length=4_000, description="Why, for the model and a human.")
    action: Literal["tell", "fail"] = Field(description="What follows.")
    call_id: str | None = Field(default=None, description="The tool call it concerns, if any.")
    tool: str | None = Field(default=None, description="That call's tool.")
    usage: TokenUsage = Field(
        default_factory=TokenUsage,
        description="Tokens of the model call whose decision an `after_model` guard set "
        "aside: spent all the same, and counted against the run's budget.",
    )
