"""The tools memory answers itself, `remember(fact)` and `recall(query)`, and episodes.

Memory holds long-term memory, so it serves these two tools from the decision that asks for
them (the tool executor skips them). `remember` is answered at once; `recall` needs a search,
which the handler performs. Either way the answer is published to agent.observations and
folded from there, like any tool result.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopline_events import (
    OBSERVATIONS,
    ToolCall,
    ToolCallFailed,
    ToolCallSucceeded,
    ToolError,
    ToolErrorKind,
    ToolSpec,
)
from loopline_tools import SERVED_BY_MEMORY

from loopline_memory.domain.delegation import DELEGATE, DELEGATE_SPEC
from loopline_memory.domain.state import Emission, RecallRequest, Request, RunState, StoreMemory

MAX_FACT_CHARS = 2_000
MAX_RECALL = 20
DEFAULT_RECALL = 5
NO_MEMORIES = "No memories match."
START_RECALL_CALL = "memory-recall"
"""Call id of the recall memory makes by itself when a run starts."""

MEMORY_TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="remember",
        description="Keep a fact in long-term memory, for later runs of this agent and tenant.",
        parameters={
            "type": "object",
            "properties": {"fact": {"type": "string", "description": "The fact, as one sentence."}},
            "required": ["fact"],
        },
    ),
    ToolSpec(
        name="recall",
        description="Search long-term memory (facts kept and earlier runs) for a query.",
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RECALL},
            },
            "required": ["query"],
        },
    ),
    DELEGATE_SPEC,
)
"""What the model is shown of memory's tools (`delegate` with a run's own delegates)."""


def serve(state: RunState, calls: Sequence[ToolCall]) -> tuple[list[Emission], list[Request]]:
    """Answers to the calls of memory's tools among `calls`, and the work they need."""
    emissions: list[Emission] = []
    requests: list[Request] = []
    for call in calls:
        if call.tool not in SERVED_BY_MEMORY or call.tool == DELEGATE:
            continue
        refused = _refusal(state, call)
        if refused is not None:
            failed = ToolCallFailed(call_id=call.call_id, tool=call.tool, error=refused)
            emissions.append(Emission(topic=OBSERVATIONS.name, payload=failed))
        elif call.tool == "remember":
            fact = str(call.arguments["fact"]).strip()
            requests.append(StoreMemory(kind="fact", content=fact))
            done = ToolCallSucceeded(call_id=call.call_id, tool=call.tool, output="Remembered.")
            emissions.append(Emission(topic=OBSERVATIONS.name, payload=done))
        else:
            limit = call.arguments.get("limit", DEFAULT_RECALL)
            query = str(call.arguments["query"]).strip()
            requests.append(RecallRequest(call_id=call.call_id, query=query, limit=limit))
    return emissions, requests


def _refusal(state: RunState, call: ToolCall) -> ToolError | None:
    if call.tool not in state.tools:
        message = f"the tool {call.tool!r} is not allowed for agent {state.agent!r}"
        return ToolError(kind=ToolErrorKind.FORBIDDEN, message=message)
    problem = call.arguments_error or _argument_problem(call)
    if problem:
        return ToolError(kind=ToolErrorKind.INVALID_ARGUMENTS, message=problem)
    return None


def _argument_problem(call: ToolCall) -> str:
    key = "fact" if call.tool == "remember" else "query"
    value = call.arguments.get(key)
    if not isinstance(value, str) or not value.strip():
        return f"invalid arguments for {call.tool}: {key}: a non-empty string is required"
    if len(value) > MAX_FACT_CHARS:
        return f"invalid arguments for {call.tool}: {key}: at most {MAX_FACT_CHARS} characters"
    limit = call.arguments.get("limit", DEFAULT_RECALL)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECALL:
        return f"invalid arguments for {call.tool}: limit: an integer from 1 to {MAX_RECALL}"
    return ""


def recalled(call_id: str, memories: Sequence[str]) -> ToolCallSucceeded:
    """The result of a recall: the memories found, best first."""
    output = "\n".join(f"- {m}" for m in memories) if memories else NO_MEMORIES
    return ToolCallSucceeded(call_id=call_id, tool="recall", output=output)


def episode(state: RunState) -> StoreMemory:
    """What long-term memory keeps of a finished run: its goal, outcome and a summary."""
    outcome = state.status.value + (f" ({state.failure.value})" if state.failure else "")
    summary = state.answer if state.answer is not None else state.failure_message
    text = f"Goal: {state.goal}\nOutcome: {outcome}\nSummary: {summary}"
    return StoreMemory(kind="episode", content=text[: MAX_FACT_CHARS * 2])


def memories_note(output: str) -> str:
    """The message that puts recalled memories in a run's first context."""
    return f"Memories from earlier runs that may help:\n{output}"
