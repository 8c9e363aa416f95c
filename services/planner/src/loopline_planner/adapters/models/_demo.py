"""`DemoModel`: the demo model. Deterministic, offline, no key: it reads the conversation and
plays a few kinds of goals the way a real model would, through the tools."""

from __future__ import annotations

import json
from collections.abc import Iterable

from loopline_events import TokenUsage, ToolCall

from loopline_planner.adapters.models._demo_plan import plan
from loopline_planner.adapters.models._types import ModelReply, ModelRequest, TextSink


class DemoModel:
    """The demo model: decides from the conversation alone, the same way every time.

    It understands arithmetic (all expressions of the goal at once, as parallel calculator
    calls), chains ("Compute 17 + 25, then multiply the result by 3"), "count to N" (one step
    per number), "what time is it", fetching a URL, "remember that ..." and "recall ...";
    "record N side effects" (one call per step of `record_effect`, the test tool that counts
    its executions) serves the chaos tests; anything else gets an answer saying so. It calls
    the tool it needs even when the context does not offer it, so the executor's refusal
    shows; and after a failed call it answers with what it has instead of calling again.

    Call ids are `call_<step>_<i>`, the step being one more than the assistant messages so far;
    token usage is estimated from the text, about four characters a token.
    """

    name: str = "demo"

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelReply:
        """The demo's decision for `request`; a final answer is handed to `on_text` whole, as
        a model writing it at once would."""
        decided = plan(request.messages)
        prompt = sum(_tokens(m.text_chars) for m in request.messages)
        if decided.answer is not None:
            usage = TokenUsage(
                prompt_tokens=prompt, completion_tokens=estimate_tokens([decided.answer])
            )
            if on_text is not None:
                await on_text(decided.answer)
            return ModelReply(final_answer=decided.answer, usage=usage)
        step = sum(1 for m in request.messages if m.role == "assistant") + 1
        calls = tuple(
            ToolCall(call_id=f"call_{step}_{i}", tool=c.tool, arguments=c.arguments)
            for i, c in enumerate(decided.calls)
        )
        completion = estimate_tokens(_call_text(c) for c in calls)
        return ModelReply(
            tool_calls=calls, usage=TokenUsage(prompt_tokens=prompt, completion_tokens=completion)
        )

    async def aclose(self) -> None:
        """Nothing to release."""


def estimate_tokens(texts: Iterable[str]) -> int:
    """About four characters a token, at least one a text: enough to exercise token budgets."""
    return sum(_tokens(len(text)) for text in texts)


def _tokens(chars: int) -> int:
    return chars // 4 + 1


def _call_text(call: ToolCall) -> str:
    return call.tool + json.dumps(call.arguments, sort_keys=True)
