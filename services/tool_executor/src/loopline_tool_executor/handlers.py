"""The executor's use case: run a decision's tool calls, one result event per call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from loopline_bus import Outbound
from loopline_events import (
    OBSERVATIONS,
    Envelope,
    ModelDecided,
    Payload,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
)
from loopline_runtime import AgentProfile
from loopline_tools import SERVED_BY_MEMORY, ToolContext, ToolRegistry, run_tool

from loopline_tool_executor.domain import refusal

PRODUCER = "tool-executor"

log = logging.getLogger("loopline.tool_executor")


class ExecutorHandler:
    """Runs the tool calls of a decision concurrently, each with its timeout and retries."""

    def __init__(
        self,
        registry: ToolRegistry,
        profiles: Mapping[str, AgentProfile],
        *,
        allow_private_networks: bool = False,
    ):
        self.registry = registry
        self.profiles = profiles
        self.allow_private_networks = allow_private_networks

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        decision = event.payload
        if not isinstance(decision, ModelDecided):
            return ()
        # Memory answers its own tools (remember, recall) from the same decision.
        calls = [c for c in decision.tool_calls if c.tool not in SERVED_BY_MEMORY]
        outcomes = await asyncio.gather(*(self._run(event, decision, c) for c in calls))
        return [
            Outbound(OBSERVATIONS.name, event.follow(payload, producer=PRODUCER, index=i))
            for i, payload in enumerate(outcomes)
        ]

    async def _run(self, event: Envelope[Any], decision: ModelDecided, call: ToolCall) -> Payload:
        profile = self.profiles.get(decision.agent)
        refused = refusal(
            call.tool, decision.agent, profile.tools if profile else None, self.registry.names()
        )
        if refused is not None:
            log.info("run %s: refused %s: %s", event.run_id, call.tool, refused.message)
            return ToolCallFailed(call_id=call.call_id, tool=call.tool, error=refused)
        tool = self.registry.get(call.tool)
        assert tool is not None  # refusal() checked it is known
        context = ToolContext(
            run_id=event.run_id,
            call_id=call.call_id,
            tenant=event.tenant,
            agent=decision.agent,
            allow_private_networks=self.allow_private_networks,
        )
        outcome = await run_tool(
            tool, call.arguments, context, arguments_error=call.arguments_error
        )
        if outcome.error is not None:
            return ToolCallFailed(
                call_id=call.call_id, tool=call.tool, error=outcome.error, attempts=outcome.attempts
            )
        return ToolCallSucceeded(
            call_id=call.call_id,
            tool=call.tool,
            output=outcome.output or "",
            attempts=outcome.attempts,
            duration_ms=outcome.duration_ms,
        )
