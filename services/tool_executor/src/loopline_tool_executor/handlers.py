"""The executor's use case: run a decision's tool calls, one result event per call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from loopline_artifacts import INLINE_CHARS, ArtifactStore, ArtifactTooLargeError
from loopline_bus import Outbound
from loopline_events import (
    OBSERVATIONS,
    ApprovalRequested,
    Envelope,
    ModelDecided,
    ToolCall,
    ToolCallApproved,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
)
from loopline_runtime import AgentProfile, Guards, load_guards, redact
from loopline_tools import (
    SERVED_BY_MEMORY,
    Effect,
    McpTools,
    Tool,
    ToolContext,
    ToolRegistry,
    run_tool,
)

from loopline_tool_executor.adapters.ledger import ToolLedger
from loopline_tool_executor.domain import (
    Action,
    Outcome,
    Stopped,
    next_action,
    outcome_of,
    published,
    refusal,
    unknown_outcome,
)
from loopline_tool_executor.guarding import guard_call, guard_output

PRODUCER = "tool-executor"

log = logging.getLogger("loopline.tool_executor")

CallKey = tuple[str, int, str]
"""(run id, step, call id): a call's identity in the ledger."""


class ExecutorHandler:
    """Runs the tool calls of a decision concurrently, each with its timeout and retries.

    With a `ledger`, side-effecting calls run at most once whatever is redelivered (see
    `loopline_tool_executor.domain.ledger`). With `mcp`, the tools of MCP servers are run
    besides the registry's, under the same rules. `guards`: each profile's guards (by
    default, those its profile names, from the installed guards).
    """

    def __init__(
        self,
        registry: ToolRegistry,
        profiles: Mapping[str, AgentProfile],
        *,
        allow_private_networks: bool = False,
        ledger: ToolLedger | None = None,
        artifacts: ArtifactStore | None = None,
        mcp: McpTools | None = None,
        guards: Mapping[str, Guards] | None = None,
    ):
        self.registry = registry
        self.mcp = mcp
        self.profiles = profiles
        self.allow_private_networks = allow_private_networks
        self.ledger = ledger
        self.artifacts = artifacts
        self.guards = load_guards(profiles) if guards is None else guards
        # Outcomes whose ledger write failed: a retry of the decision records them rather
        # than mistaking its own finished call for one a crash interrupted.
        self._unrecorded: dict[CallKey, Outcome] = {}

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        payload = event.payload
        if isinstance(payload, ToolCallApproved):
            # A held call a person approved: memory's word, not the model's, runs it.
            outcome = await self._run(event, payload.agent, payload.call, held=False)
            return [
                Outbound(OBSERVATIONS.name, event.follow(answer, producer=PRODUCER, index=i))
                for i, answer in published([outcome])
            ]
        if not isinstance(payload, ModelDecided):
            return ()
        # Memory answers its own tools (remember, recall, delegate) from the same decision.
        calls = [c for c in payload.tool_calls if c.tool not in SERVED_BY_MEMORY]
        outcomes = await self._run_all(event, payload, calls)
        return [
            Outbound(OBSERVATIONS.name, event.follow(answer, producer=PRODUCER, index=i))
            for i, answer in published(outcomes)
        ]

    async def _run_all(
        self, event: Envelope[Any], decision: ModelDecided, calls: Sequence[ToolCall]
    ) -> list[Outcome | Stopped | ApprovalRequested]:
        """Run the calls concurrently; if one raises (its ledger is unreachable), the others
        are cancelled and awaited before the error goes up. A call left running while the
        decision is retried would meet its own retry in the ledger, unfinished, and could be
        reconciled as not done and run twice."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._run(event, decision.agent, c)) for c in calls]
        except ExceptionGroup as failed:
            # The first error carries the retry policy the bus reads (`retryable`).
            raise failed.exceptions[0] from None
        return [t.result() for t in tasks]

    async def _run(
        self, event: Envelope[Any], agent: str, call: ToolCall, *, held: bool = True
    ) -> Outcome | Stopped | ApprovalRequested:
        """Run one call, unless it may not run, a guard stops it, or (`held`) its profile
        holds it for a person's approval: then say so instead."""
        profile = self.profiles.get(agent)
        tool = await self._find(call.tool)
        known = [call.tool] if tool is not None else self._names()
        missing = self.mcp.missing(call.tool) if self.mcp is not None else None
        refused = refusal(call.tool, agent, profile.tools if profile else None, known, missing)
        if refused is not None:
            log.info("run %s: refused %s: %s", event.run_id, call.tool, refused.message)
            return ToolCallFailed(call_id=call.call_id, tool=call.tool, error=refused)
        assert tool is not None  # refusal() checked it is known
        assert profile is not None
        context = ToolContext(
            run_id=event.run_id,
            call_id=call.call_id,
            tenant=event.tenant,
            agent=agent,
            allow_private_networks=self.allow_private_networks,
            artifacts=self.artifacts,
        )
        guarded = await guard_call(self._guards(agent), call, tool.effect, context)
        if isinstance(guarded, Stopped):
            return guarded
        call = guarded  # runs (or is held) with the arguments the guards left
        policy = profile.approvals
        why = policy.holds(tool.name, tool.effect.value) if policy and held else None
        if why is not None:
            assert policy is not None
            log.info("run %s: %s %s held for approval", event.run_id, tool.name, call.call_id)
            return ApprovalRequested(
                call_id=call.call_id,
                tool=call.tool,
                arguments=call.arguments,
                effect=tool.effect.value,
                policy=why,
                approvers=policy.approvers,
                # From the decision's time: a redelivered decision asks the same.
                until=event.occurred_at + timedelta(seconds=policy.timeout_s),
                on_timeout=policy.on_timeout,
            )
        if tool.effect is Effect.SIDE_EFFECT and self.ledger is not None:
            return await self._run_once(self.ledger, (event.run_id, event.seq), tool, call, context)
        # Pure tools may repeat; idempotent ones carry ctx.idempotency_key to what they change.
        return await self._execute(tool, call, context)

    def _guards(self, agent: str) -> Guards:
        return self.guards.get(agent) or Guards()

    def _names(self) -> list[str]:
        return sorted({*self.registry.names(), *(self.mcp.names() if self.mcp else ())})

    async def _find(self, name: str) -> Tool | None:
        """A built-in or installed tool, else an MCP server's."""
        tool = self.registry.get(name)
        if tool is None and self.mcp is not None:
            tool = await self.mcp.find(name)
        return tool

    async def _run_once(
        self,
        ledger: ToolLedger,
        step: tuple[str, int],
        tool: Tool,
        call: ToolCall,
        context: ToolContext,
    ) -> Outcome:
        """Run a side-effecting call only if the ledger has never seen it start."""
        key = (*step, call.call_id)
        outcome = self._unrecorded.get(key)
        if outcome is None:
            claim = await ledger.claim(*key, tool.name)
            action = next_action(claim, can_reconcile=tool.reconcile is not None)
            if action is Action.REPLAY:
                assert claim.outcome is not None
                log.info("run %s: %s %s already done; replaying", step[0], tool.name, key[2])
                return outcome_of(claim.outcome)
            outcome = await self._act(action, tool, call, context)
        self._unrecorded[key] = outcome
        await ledger.finish(*key, outcome)
        del self._unrecorded[key]
        return outcome

    async def _act(
        self, action: Action, tool: Tool, call: ToolCall, context: ToolContext
    ) -> Outcome:
        if action is Action.REPORT_UNKNOWN:
            log.warning(
                "run %s: %s %s unfinished; unknown", context.run_id, tool.name, call.call_id
            )
            return unknown_outcome(call.call_id, tool.name, "and it has no reconcile hook")
        if action is Action.RECONCILE:
            reconciled = await _reconcile(tool, call, context)
            if isinstance(reconciled, ToolCallSucceeded):
                return await guard_output(self._guards(context.agent), call, reconciled, context)
            if reconciled is not None:
                return reconciled
            log.info(
                "run %s: %s %s reconciled as not done", context.run_id, tool.name, call.call_id
            )
        return await self._execute(tool, call, context)

    async def _execute(self, tool: Tool, call: ToolCall, context: ToolContext) -> Outcome:
        outcome = await run_tool(
            tool, call.arguments, context, arguments_error=call.arguments_error
        )
        if outcome.error is not None:
            # A tool's error may quote what it was given or met: a secret stops here.
            error = outcome.error.model_copy(update={"message": redact(outcome.error.message)})
            return ToolCallFailed(
                call_id=call.call_id, tool=call.tool, error=error, attempts=outcome.attempts
            )
        done = ToolCallSucceeded(
            call_id=call.call_id,
            tool=call.tool,
            output=outcome.output or "",
            attempts=outcome.attempts,
            duration_ms=outcome.duration_ms,
        )
        # Before it is stored or published: a secret in it never leaves this process.
        guarded = await guard_output(self._guards(context.agent), call, done, context)
        if isinstance(guarded, Stopped):
            return guarded
        return await self._claim_checked(guarded)

    async def _claim_checked(self, done: ToolCallSucceeded) -> Outcome:
        """A result whose output is too large to travel inline, stored as an artifact first
        and referenced; one too large for the store, a clear failure saying so."""
        if len(done.output) <= INLINE_CHARS or self.artifacts is None:
            return done
        try:
            stored = await self.artifacts.put(done.output)
        except ArtifactTooLargeError as exc:
            error = ToolError(kind=ToolErrorKind.TOO_LARGE, message=f"the output of {exc}")
            return ToolCallFailed(
                call_id=done.call_id, tool=done.tool, error=error, attempts=done.attempts
            )
        return done.model_copy(update={"output": "", "artifact": stored})


async def _reconcile(tool: Tool, call: ToolCall, context: ToolContext) -> Outcome | None:
    """The tool's own verdict on an interrupted call; None when it surely did not happen."""
    assert tool.reconcile is not None
    try:
        args = tool.args_model.model_validate(call.arguments)
        async with asyncio.timeout(tool.timeout_s):
            output = await tool.reconcile(args, context)
    except Exception as exc:
        return unknown_outcome(call.call_id, tool.name, f"reconcile failed: {exc!r}")
    if output is None:
        return None
    return ToolCallSucceeded(call_id=call.call_id, tool=call.tool, output=output)
