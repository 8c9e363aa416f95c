"""The demo model, driven step by step through conversations shaped as the memory service
builds them: system prompt, user goal, then assistant tool calls and tool results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from loopline_events import Message, ToolCall, ToolSpec
from loopline_planner.adapters.models import DemoModel, ModelAdapter, ModelReply, ModelRequest
from loopline_tools import BUILTIN_TOOLS, ToolContext, run_tool

SYSTEM = "You are a careful assistant. Use the tools when they help, then answer briefly."
CALCULATOR = next(t for t in BUILTIN_TOOLS if t.name == "calculator")
NOW = "2025-06-01T12:00:00+00:00 (UTC, Sunday)"
PAGE = "HTTP 200 text/plain\n\nHello from the test page\nsecond line\nthird line\nfourth line"

Results = Callable[[ToolCall], Awaitable[str]]


async def tools(call: ToolCall) -> str:
    """Results as the tool executor and memory give them: the real calculator, fixed others,
    and failures written `error (kind): message`."""
    if call.tool == "calculator":
        outcome = await run_tool(CALCULATOR, call.arguments, ToolContext("run", call.call_id))
        if outcome.error is not None:
            return f"error ({outcome.error.kind.value}): {outcome.error.message}"
        return outcome.output or ""
    fixed = {"current_time": NOW, "http_get": PAGE, "remember": "stored", "recall": "locker 12"}
    return fixed[call.tool]


def refusing(tool: str) -> Results:
    """The tools, except that `tool` is refused as the executor refuses an unlisted tool."""

    async def results(call: ToolCall) -> str:
        if call.tool == tool:
            return f"error (forbidden): the tool {tool!r} is not allowed for agent 'calculator'"
        return await tools(call)

    return results


def context(messages: list[Message], offered: tuple[str, ...] = ()) -> ModelRequest:
    specs = tuple(ToolSpec(name=name) for name in offered)
    return ModelRequest(agent="default", model="demo", messages=tuple(messages), tools=specs)


@dataclass
class Run:
    """A conversation played to its end: every reply, and the messages memory kept."""

    replies: list[ModelReply] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    @property
    def calls(self) -> list[list[tuple[str, str, dict[str, object]]]]:
        return [[(c.call_id, c.tool, c.arguments) for c in r.tool_calls] for r in self.replies]

    @property
    def answer(self) -> str:
        final = self.replies[-1].final_answer
        assert final is not None, "the run did not end with an answer"
        return final


async def drive(goal: str, results: Results = tools, max_steps: int = 12) -> Run:
    model: ModelAdapter = DemoModel()
    run = Run(messages=[Message(role="system", content=SYSTEM), Message(role="user", content=goal)])
    for _ in range(max_steps):
        reply = await model.complete(context(run.messages))
        run.replies.append(reply)
        if reply.final_answer is not None:
            assert not reply.tool_calls
            return run
        assert reply.tool_calls
        run.messages.append(Message(role="assistant", tool_calls=reply.tool_calls))
        for call in reply.tool_calls:
            content = await results(call)
            run.messages.append(Message(role="tool", content=content, tool_call_id=call.call_id))
    return run


async def test_a_chain_takes_one_calculator_step_per_operation_using_the_previous_result() -> None:
    run = await drive("Compute 17 + 25, then multiply the result by 3, then subtract 6")
    assert run.calls[:3] == [
        [("call_1_0", "calculator", {"expression": "17 + 25"})],
        [("call_2_0", "calculator", {"expression": "42 * 3"})],
        [("call_3_0", "calculator", {"expression": "126 - 6"})],
    ]
    assert len(run.replies) == 4
    assert "The answer is 120." in run.answer


@pytest.mark.parametrize(
    ("goal", "expressions", "result"),
    [
        ("compute 10 / 4, then divide it by 5", ["10 / 4", "2.5 / 5"], "0.5"),
        ("What is 2 + 3? Then add 10, then minus 1", ["2 + 3", "5 + 10", "15 - 1"], "14"),
        ("Take 6 * 7 then plus 8 then times 2", ["6 * 7", "42 + 8", "50 * 2"], "100"),
        ("COMPUTE 1 - 5, THEN MULTIPLY IT BY -2", ["1 - 5", "-4 * -2"], "8"),
    ],
)
async def test_chains_understand_each_operation(
    goal: str, expressions: list[str], result: str
) -> None:
    run = await drive(goal)
    asked = [c.arguments["expression"] for r in run.replies for c in r.tool_calls]
    assert asked == expressions
    assert run.answer.endswith(f"The answer is {result}.")


async def test_counting_takes_one_step_per_number_then_answers_the_number() -> None:
    run = await drive("Count to 3")
    assert run.calls[:3] == [
        [("call_1_0", "calculator", {"expression": "0 + 1"})],
        [("call_2_0", "calculator", {"expression": "1 + 1"})],
        [("call_3_0", "calculator", {"expression": "2 + 1"})],
    ]
    assert len(run.replies) == 4
    assert "3" in run.answer


async def test_counting_far_keeps_asking_so_only_a_step_budget_stops_it() -> None:
    run = await drive("count from 1 to 100", max_steps=6)
    assert len(run.replies) == 6
    assert all(r.final_answer is None for r in run.replies)
    assert run.calls[-1] == [("call_6_0", "calculator", {"expression": "5 + 1"})]


@pytest.mark.parametrize(
    ("goal", "expressions"),
    [
        ("What is 12*7 + 3 and (100 - 58) / 2?", ["12*7 + 3", "(100 - 58) / 2"]),
        ("what is 2 + 2.", ["2 + 2"]),
        ("(is 3 * 3 more than 2 ** 3)", ["3 * 3", "2 ** 3"]),
        ("Is -5 + 3 negative? And 7 \u00d7 6?", ["-5 + 3", "7 * 6"]),
    ],
)
async def test_every_expression_of_the_goal_is_one_parallel_call_of_the_first_step(
    goal: str, expressions: list[str]
) -> None:
    run = await drive(goal)
    assert run.calls[0] == [
        (f"call_1_{i}", "calculator", {"expression": e}) for i, e in enumerate(expressions)
    ]
    assert len(run.replies) == 2


async def test_the_answer_lists_each_expression_with_its_result() -> None:
    run = await drive("What is 12*7 + 3 and (100 - 58) / 2?")
    assert "12*7 + 3 = 87" in run.answer
    assert "(100 - 58) / 2 = 21" in run.answer


async def test_the_time_is_asked_in_utc_and_can_share_a_step_with_arithmetic() -> None:
    run = await drive("What is 6 * 7, and what time is it?")
    assert run.calls[0] == [
        ("call_1_0", "calculator", {"expression": "6 * 7"}),
        ("call_1_1", "current_time", {"timezone": "UTC"}),
    ]
    assert "6 * 7 = 42" in run.answer
    assert NOW in run.answer


@pytest.mark.parametrize("goal", ["What time is it?", "Tell me the CURRENT TIME please"])
async def test_time_questions_call_current_time(goal: str) -> None:
    run = await drive(goal)
    assert run.calls[0] == [("call_1_0", "current_time", {"timezone": "UTC"})]
    assert NOW in run.answer


async def test_a_url_to_fetch_is_fetched_and_the_answer_quotes_its_first_lines() -> None:
    run = await drive("Please fetch https://example.com/docs/2024/10.")
    assert run.calls[0] == [("call_1_0", "http_get", {"url": "https://example.com/docs/2024/10"})]
    assert "Hello from the test page" in run.answer
    assert "fourth line" not in run.answer


async def test_a_fact_to_remember_is_given_to_the_remember_tool() -> None:
    run = await drive("Remember that the build takes 3-4 minutes.")
    assert run.calls[0] == [("call_1_0", "remember", {"fact": "the build takes 3-4 minutes"})]
    assert "the build takes 3-4 minutes" in run.answer


@pytest.mark.parametrize(
    ("goal", "query"),
    [("Recall my locker", "my locker"), ("What do you remember about my locker?", "my locker")],
)
async def test_a_question_about_memory_is_given_to_the_recall_tool(goal: str, query: str) -> None:
    run = await drive(goal)
    assert run.calls[0] == [("call_1_0", "recall", {"query": query})]
    assert "locker 12" in run.answer


async def test_a_goal_it_does_not_understand_is_answered_at_once_with_what_it_can_do() -> None:
    run = await drive("Write me a poem about Kafka")
    assert len(run.replies) == 1
    for kind in ("arithmetic", "Count to", "What time", "Fetch", "Remember", "Recall"):
        assert kind in run.answer


async def test_a_refused_tool_is_explained_in_the_answer_instead_of_called_again() -> None:
    run = await drive("What time is it?", results=refusing("current_time"))
    assert len(run.replies) == 2
    assert "current_time" in run.answer
    assert "not allowed" in run.answer


async def test_after_a_failure_the_answer_keeps_the_results_that_did_come() -> None:
    run = await drive("What is 2 + 3, and what time is it?", results=refusing("current_time"))
    assert len(run.replies) == 2
    assert "not allowed" in run.answer
    assert "2 + 3 gave 5" in run.answer


async def test_a_failed_step_of_a_chain_ends_it() -> None:
    run = await drive("Compute 1 / 0, then add 2")
    assert len(run.replies) == 2
    assert "division by zero" in run.answer


async def test_it_calls_the_tool_it_needs_even_when_the_context_does_not_offer_it() -> None:
    messages = [Message(role="system", content=SYSTEM), Message(role="user", content="What time?")]
    reply = await DemoModel().complete(context(messages, offered=("calculator",)))
    assert [c.tool for c in reply.tool_calls] == ["current_time"]


async def test_the_same_context_gives_the_same_reply_and_call_ids() -> None:
    run = await drive("What is 12*7 + 3 and (100 - 58) / 2? What time is it?")
    first_step = context(run.messages[:2])
    replies = [await DemoModel().complete(first_step) for _ in range(3)]
    assert replies[0] == replies[1] == replies[2] == run.replies[0]
    final = [await DemoModel().complete(context(run.messages)) for _ in range(2)]
    assert final[0] == final[1] == run.replies[-1]


async def test_usage_is_estimated_from_the_text_and_grows_with_the_context() -> None:
    run = await drive("Compute 17 + 25, then multiply the result by 3, then subtract 6")
    prompts = [r.usage.prompt_tokens for r in run.replies]
    assert prompts == sorted(prompts)
    assert len(set(prompts)) == len(prompts)
    assert all(r.usage.completion_tokens > 0 for r in run.replies)
    assert DemoModel.name == "demo"
