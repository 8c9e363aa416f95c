"""The guards around a tool call, as the executor runs them: on the call before anything runs
it (or holds it), and on a successful output before it is stored or published."""

from __future__ import annotations

from loopline_events import ToolCall, ToolCallSucceeded
from loopline_runtime import GuardContext, Guards
from loopline_tools import Effect, ToolContext

from loopline_tool_executor.domain import Stopped, stopped


def scope(context: ToolContext) -> GuardContext:
    """Whose call the guards look at."""
    return GuardContext(run_id=context.run_id, tenant=context.tenant, agent=context.agent)


async def guard_call(
    guards: Guards, call: ToolCall, effect: Effect, context: ToolContext
) -> ToolCall | Stopped:
    """The call as it may run (its arguments as the guards left them), or why it may not."""
    if not guards:
        return call
    guarded = await guards.before_tool(call, effect.value, scope(context))
    return guarded if isinstance(guarded, ToolCall) else stopped(call, guarded)


async def guard_output(
    guards: Guards, call: ToolCall, done: ToolCallSucceeded, context: ToolContext
) -> ToolCallSucceeded | Stopped:
    """The result as the run may read it (its output as the guards left it), or the failure
    that withholds it."""
    if not guards:
        return done
    output = await guards.after_tool(call, done.output, scope(context))
    if isinstance(output, str):
        return done if output == done.output else done.model_copy(update={"output": output})
    return stopped(call, output, attempts=done.attempts)
