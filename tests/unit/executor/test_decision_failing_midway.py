"""A decision whose ledger fails for one call while another call runs: the running call is
cancelled before the error goes up, so the decision's retry never meets its own first try
still running (which the ledger would show as started, unfinished: a repeat in the making)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from loopline_events import Envelope, ModelDecided, ToolCall
from loopline_runtime import AgentProfile
from loopline_tool_executor.adapters.ledger import LedgerUnavailable, ToolLedger
from loopline_tool_executor.domain import Claim, Outcome, Prior
from loopline_tool_executor.handlers import ExecutorHandler
from loopline_tools import Effect, ToolContext, ToolRegistry, tool
from pydantic import BaseModel


class NoArgs(BaseModel):
    """No arguments."""


class HalfDownLedger(ToolLedger):
    """A ledger that records call `a` and is unreachable for call `b`."""

    def __init__(self) -> None:
        super().__init__(pool=None, schema="executor")

    async def claim(self, run_id: str, seq: int, call_id: str, tool: str) -> Claim:
        if call_id == "b":
            await asyncio.sleep(0.05)  # `a` is running by now
            raise LedgerUnavailable("tool ledger unavailable: connection refused")
        return Claim(Prior.NEW)

    async def finish(self, run_id: str, seq: int, call_id: str, outcome: Outcome) -> None:
        return None


async def test_the_other_calls_are_cancelled_and_the_retryable_error_goes_up() -> None:
    done: list[str] = []

    @tool(effect=Effect.SIDE_EFFECT)
    async def pay(args: NoArgs, ctx: ToolContext) -> str:
        """Pay, slowly."""
        await asyncio.sleep(0.3)
        done.append(ctx.call_id)
        return "paid"

    handler = ExecutorHandler(
        ToolRegistry([pay]),
        {"payer": AgentProfile(name="payer", system_prompt="Pay.", tools=("pay",))},
        ledger=HalfDownLedger(),
    )
    decision = ModelDecided(
        agent="payer",
        model="m",
        tool_calls=(ToolCall(call_id="a", tool="pay"), ToolCall(call_id="b", tool="pay")),
    )
    event: Envelope[Any] = Envelope.of(decision, run_id="r", producer="planner", seq=1)
    with pytest.raises(LedgerUnavailable) as raised:
        await handler(event)
    assert raised.value.retryable  # what the bus reads to retry the decision
    await asyncio.sleep(0.5)
    assert done == []  # `a` was cancelled, not left to finish behind the retry
