"""`AnthropicModel` (the official SDK) over real HTTP, against `AnthropicServer`: the Messages
request it streams (tools, tool results, prompt caching marks), how it reads the stream, and
which failures are retried."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from loopline_events import Message, TokenUsage, ToolCall, ToolSpec
from loopline_planner.adapters.models import AnthropicModel, ModelError, ModelRequest
from loopline_runtime import price_of
from loopline_testing.anthropic_server import AnthropicServer
from pydantic import SecretStr

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
)
CLOCK = ToolSpec(name="current_time", description="The time now.")
FIRST = ToolCall(call_id="call_1_0", tool="calculator", arguments={"expression": "17 + 25"})
GOAL = Message(role="user", content="Compute 17 + 25, then multiply the result by 3")
SYSTEM = Message(role="system", content="Use the tools. " * 40)
STEP_1 = ModelRequest(
    agent="claude",
    model="anthropic:claude-test",
    messages=(SYSTEM, GOAL),
    tools=(CALCULATOR, CLOCK),
)
STEP_2 = ModelRequest(
    agent="claude",
    model="anthropic:claude-test",
    messages=(
        SYSTEM,
        GOAL,
        Message(role="assistant", tool_calls=(FIRST,)),
        Message(role="tool", content="42", tool_call_id="call_1_0"),
    ),
    tools=(CALCULATOR, CLOCK),
)
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as running:
        yield running


@pytest.fixture
async def model(server: AnthropicServer) -> AsyncIterator[AnthropicModel]:
    adapter = AnthropicModel(
        model="claude-test",
        base_url=server.base_url,
        api_key=SecretStr("sk-ant-test"),
        max_tokens=1000,
        timeout_s=5,
    )
    yield adapter
    await adapter.aclose()


async def test_a_tool_use_reply_becomes_tool_calls(
    server: AnthropicServer, model: AnthropicModel
) -> None:
    server.reply_tool_use([("calculator", {"expression": "42 * 3"}, "toolu_2")], text="Let me see.")
    reply = await model.complete(STEP_2)
    assert reply.tool_calls == (
        ToolCall(call_id="toolu_2", tool="calculator", arguments={"expression": "42 * 3"}),
    )
    assert reply.final_answer is None


async def test_the_request_marks_its_stable_prefix_for_the_prompt_cache(
    server: AnthropicServer, model: AnthropicModel
) -> None:
    server.reply_text("126")
    await model.complete(STEP_2)
    (request,) = server.requests
    assert request.path == "/v1/messages"
    # The SDK sends the key its way (x-api-key, or a bearer token in recent versions).
    sent = request.headers.get("x-api-key") or request.headers["authorization"]
    assert sent.removeprefix("Bearer ") == "sk-ant-test"
    assert "anthropic-version" in request.headers
    assert (request["model"], request["max_tokens"], request["stream"]) == (
        "claude-test",
        1000,
        True,
    )
    assert request["system"] == [
        {"type": "text", "text": SYSTEM.content, "cache_control": EPHEMERAL}
    ]
    assert request["tools"] == [
        {
            "name": "calculator",
            "description": CALCULATOR.description,
            "input_schema": CALCULATOR.parameters,
        },
        {
            "name": "current_time",
            "description": CLOCK.description,
            "input_schema": {"type": "object", "properties": {}},
            "cache_control": EPHEMERAL,
        },
    ]
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": GOAL.content}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1_0",
                    "name": "calculator",
                    "input": {"expression": "17 + 25"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1_0",
                    "content": "42",
                    "cache_control": EPHEMERAL,
                },
            ],
        },
    ]


async def test_the_next_step_reads_the_cached_prefix_and_pays_the_cached_price(
    server: AnthropicServer, model: AnthropicModel
) -> None:
    server.reply_tool_use([("calculator", {"expression": "17 + 25"}, "call_1_0")])
    server.reply_text("126")
    first = await model.complete(STEP_1)
    second = await model.complete(STEP_2)
    # Step 1 writes its whole prompt to the cache; step 2 starts with it and reads it back.
    assert first.usage.cached_tokens == 0
    assert first.usage.cache_write_tokens > 0
    assert second.usage.cached_tokens == first.usage.cache_write_tokens
    # The rest of it (the new round) is written for the step after: nothing at full price.
    assert (
        second.usage.prompt_tokens == second.usage.cached_tokens + second.usage.cache_write_tokens
    )
    assert second.usage.cache_write_tokens > 0
    uncached = TokenUsage(
        prompt_tokens=second.usage.prompt_tokens, completion_tokens=second.usage.completion_tokens
    )
    price = price_of("anthropic:claude-sonnet-4-5")
    assert price.of(second.usage) < price.of(uncached)


async def test_the_text_comes_as_it_is_written(
    server: AnthropicServer, model: AnthropicModel
) -> None:
    text = "The answer is 126, which is 42 times 3."
    server.reply_text(text, output_tokens=11)
    pieces: list[str] = []

    async def on_text(piece: str) -> None:
        pieces.append(piece)

    reply = await model.complete(STEP_2, on_text)
    assert len(pieces) > 1
    assert "".join(pieces) == reply.final_answer == text
    assert reply.usage.completion_tokens == 11


async def test_a_system_note_in_the_conversation_and_several_results_make_valid_turns(
    server: AnthropicServer, model: AnthropicModel
) -> None:
    second = ToolCall(call_id="call:1/1", tool="current_time")
    request = ModelRequest(
        agent="claude",
        model="anthropic:claude-test",
        messages=(
            SYSTEM,
            GOAL,
            Message(role="assistant", content="Two things.", tool_calls=(FIRST, second)),
            Message(role="tool", content="42", tool_call_id="call_1_0"),
            Message(role="tool", content="noon", tool_call_id="call:1/1"),
            Message(role="system", content="[loopline] Budget: this is your last step."),
        ),
    )
    server.reply_text("126")
    await model.complete(request)  # the server refuses turns that do not alternate, or dangle
    turns = server.requests[0]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result", "text"]
    assert turns[1]["content"][2]["id"] == turns[2]["content"][1]["tool_use_id"] == "call_1_1"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (429, True), (500, True), (529, True)],
)
async def test_the_status_decides_whether_a_retry_can_help(
    server: AnthropicServer, model: AnthropicModel, status: int, retryable: bool
) -> None:
    server.reply_status(status, retry_after=2, message="the reason, from the server")
    with pytest.raises(ModelError, match=f"HTTP {status}.*the reason, from the server") as raised:
        await model.complete(STEP_1)
    assert raised.value.retryable is retryable
    assert raised.value.rate_limited is (status in (429, 529))
    assert raised.value.retry_after == (2.0 if retryable else None)


async def test_overloaded_in_the_middle_of_the_stream_is_a_retryable_529(
    server: AnthropicServer, model: AnthropicModel
) -> None:
    server.reply_stream_error("It is one hundred")
    with pytest.raises(ModelError, match="HTTP 529") as raised:
        await model.complete(STEP_1)
    assert (raised.value.retryable, raised.value.rate_limited) == (True, True)


async def test_a_stream_cut_short_is_retryable(
    server: AnthropicServer, model: AnthropicModel
) -> None:
    server.reply_text("It is one hundred and twenty-six.", break_after=4)
    with pytest.raises(ModelError, match=r"the stream from .*incomplete") as raised:
        await model.complete(STEP_1)
    assert raised.value.retryable


async def test_a_server_that_is_gone_is_a_retryable_error() -> None:
    with AnthropicServer() as gone:
        base_url = gone.base_url
    model = AnthropicModel(model="m", base_url=base_url, api_key=SecretStr("k"))
    try:
        with pytest.raises(ModelError, match="cannot reach") as raised:
            await model.complete(STEP_1)
    finally:
        await model.aclose()
    assert raised.value.retryable
