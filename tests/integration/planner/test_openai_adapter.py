"""`OpenAIChatModel` (the official SDK) over real HTTP, against `OpenAIServer`: what it sends,
how it reads streamed replies, and which failures are retried."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from loopline_events import Message, TokenUsage, ToolCall, ToolSpec
from loopline_planner.adapters.models import (
    ModelError,
    ModelRequest,
    ModelSettings,
    OpenAIChatModel,
)
from loopline_planner.calls import Caller
from loopline_testing.openai_server import OpenAIServer, RecordedRequest, text_completion
from pydantic import SecretStr

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)
FIRST_CALL = ToolCall(call_id="call_1_0", tool="calculator", arguments={"expression": "17 + 25"})
REQUEST = ModelRequest(
    agent="openai",
    model="openai:gpt-test",
    messages=(
        Message(role="system", content="Use the tools."),
        Message(role="user", content="Compute 17 + 25, then multiply the result by 3"),
        Message(role="assistant", tool_calls=(FIRST_CALL,)),
        Message(role="tool", content="42", tool_call_id="call_1_0"),
    ),
    tools=(CALCULATOR,),
)


class Sleeps:
    """Records the waits between attempts instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def caller(model: OpenAIChatModel, attempts: int, timeout_s: float = 5) -> tuple[Caller, Sleeps]:
    sleep = Sleeps()
    settings = ModelSettings(max_attempts=attempts, timeout_s=timeout_s)
    return Caller(settings, lambda _: model, sleep=sleep), sleep


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
async def model(server: OpenAIServer) -> AsyncIterator[OpenAIChatModel]:
    adapter = OpenAIChatModel(
        base_url=server.base_url, model="gpt-test", api_key=SecretStr("sk-test"), timeout_s=5
    )
    yield adapter
    await adapter.aclose()


async def test_a_tool_call_reply_becomes_tool_calls(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_tool_calls(
        [("calculator", {"expression": "42 * 3"}, "call_2_0")],
        usage={"prompt_tokens": 120, "completion_tokens": 9, "cached_tokens": 100},
    )
    reply = await model.complete(REQUEST)
    assert reply.tool_calls == (
        ToolCall(call_id="call_2_0", tool="calculator", arguments={"expression": "42 * 3"}),
    )
    assert reply.final_answer is None
    assert reply.usage == TokenUsage(prompt_tokens=120, completion_tokens=9, cached_tokens=100)


async def test_the_request_streams_the_conversation_tools_model_and_key(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_text("126")
    await model.complete(REQUEST)
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request["model"] == "gpt-test"
    assert (request["stream"], request["stream_options"]) == (True, {"include_usage": True})
    assert request["messages"] == [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Compute 17 + 25, then multiply the result by 3"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1_0",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "17 + 25"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1_0", "content": "42"},
    ]
    assert request["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": "Evaluate an arithmetic expression.",
                "parameters": CALCULATOR.parameters,
            },
        }
    ]
    assert request["tool_choice"] == "auto"


async def test_without_tools_or_key_neither_is_sent(server: OpenAIServer) -> None:
    server.reply_text("hello")
    bare = ModelRequest(agent="a", model="openai:local", messages=REQUEST.messages[:2])
    keyless = OpenAIChatModel(base_url=server.base_url, model="local")
    try:
        await keyless.complete(bare)
    finally:
        await keyless.aclose()
    (request,) = server.requests
    assert "authorization" not in request.headers
    assert "tools" not in request
    assert "tool_choice" not in request


async def test_the_text_comes_as_it_is_written_then_as_the_final_answer(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    text = "The answer is 126, which is 42 times 3."
    server.reply_text(text, usage={"prompt_tokens": 150, "completion_tokens": 7})
    pieces: list[str] = []

    async def on_text(piece: str) -> None:
        pieces.append(piece)

    reply = await model.complete(REQUEST, on_text)
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert reply.final_answer == text
    assert reply.usage == TokenUsage(prompt_tokens=150, completion_tokens=7)


async def test_a_reply_without_usage_counts_zero_tokens(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    completion = text_completion("hi")
    del completion["usage"]
    server.default = lambda _: completion
    reply = await model.complete(REQUEST)
    assert (reply.final_answer, reply.usage) == ("hi", TokenUsage())


async def test_a_rate_limit_then_success_takes_two_attempts_waiting_as_told(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_status(429, retry_after=1.5)
    server.reply_text("done")
    c, sleep = caller(model, attempts=4)
    decided = await c.decide(REQUEST, ("openai:gpt-test",))
    assert (decided.reply.final_answer, decided.attempts, server.calls) == ("done", 2, 2)
    assert sleep.waits == [1.5]


async def test_a_rate_limit_error_is_retryable_and_carries_retry_after(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_status(429, retry_after=0)
    with pytest.raises(ModelError, match=r"HTTP 429.*Rate limit") as raised:
        await model.complete(REQUEST)
    assert (raised.value.retryable, raised.value.retry_after) == (True, 0.0)
    assert raised.value.rate_limited


async def test_a_retry_after_in_the_past_means_no_wait(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_raw(503, b"busy", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(ModelError, match="HTTP 503") as raised:
        await model.complete(REQUEST)
    assert (raised.value.retryable, raised.value.retry_after) == (True, 0.0)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (409, True), (502, True)],
)
async def test_the_status_decides_whether_a_retry_can_help(
    server: OpenAIServer, model: OpenAIChatModel, status: int, retryable: bool
) -> None:
    server.reply_status(status, message="the reason, from the server")
    with pytest.raises(ModelError, match=f"HTTP {status}.*the reason, from the server") as raised:
        await model.complete(REQUEST)
    assert raised.value.retryable is retryable
    assert raised.value.status == status


async def test_server_errors_until_the_last_attempt_raise_a_retryable_error(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    for _ in range(3):
        server.reply_status(500)
    c, sleep = caller(model, attempts=3)
    with pytest.raises(ModelError, match="HTTP 500") as raised:
        await c.decide(REQUEST, ("openai:gpt-test",))
    assert raised.value.retryable
    assert (server.calls, len(sleep.waits)) == (3, 2)


@pytest.mark.parametrize(
    "body",
    [b"<html>Bad gateway</html>", b'{"id": "x", "object": "chat.completion"}', b"[1, 2]"],
)
async def test_a_body_that_is_no_stream_is_a_clear_error_that_is_not_retried(
    server: OpenAIServer, model: OpenAIChatModel, body: bytes
) -> None:
    server.reply_raw(200, body)
    c, _ = caller(model, attempts=3)
    with pytest.raises(ModelError, match="malformed reply from the model API") as raised:
        await c.decide(REQUEST, ("openai:gpt-test",))
    assert not raised.value.retryable
    assert server.calls == 1


async def test_a_stream_cut_short_is_retryable_and_the_retry_answers(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_text("It is one hundred and twenty-six.", break_after=3)
    server.reply_text("126")
    with pytest.raises(ModelError, match=r"the stream from .*incomplete") as raised:
        await model.complete(REQUEST)
    assert raised.value.retryable
    assert (await model.complete(REQUEST)).final_answer == "126"


async def test_an_error_inside_the_stream_says_so(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    error = {"error": {"message": "the engine fell over", "type": "server_error"}}
    server.reply_raw(
        200,
        f"data: {json.dumps(error)}\n\n".encode(),
        headers={"Content-Type": "text/event-stream"},
    )
    with pytest.raises(ModelError, match="the engine fell over") as raised:
        await model.complete(REQUEST)
    assert raised.value.retryable


async def test_an_empty_reply_is_an_error_that_is_not_retried(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_text("")
    with pytest.raises(ModelError, match="empty reply") as raised:
        await model.complete(REQUEST)
    assert not raised.value.retryable


@pytest.mark.parametrize("arguments", ['{"expression": "2+', "[1, 2]", '"2+3"'])
async def test_arguments_that_are_not_a_json_object_are_reported_on_the_call(
    server: OpenAIServer, model: OpenAIChatModel, arguments: str
) -> None:
    server.reply_tool_calls([("calculator", arguments, "call_bad"), ("current_time", "{}", "c2")])
    reply = await model.complete(REQUEST)
    bad, good = reply.tool_calls
    assert (bad.call_id, bad.tool, bad.arguments) == ("call_bad", "calculator", {})
    assert bad.arguments_error is not None
    assert bad.arguments_error.startswith("model gave arguments that are not a JSON object: ")
    assert arguments[:5] in bad.arguments_error
    assert (good.arguments, good.arguments_error) == ({}, None)


async def test_a_slow_reply_times_out_and_the_retry_gets_the_answer(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    server.reply_text("too late", delay_s=3)
    server.reply_text("in time")
    c, sleep = caller(model, attempts=3, timeout_s=0.5)
    decided = await c.decide(REQUEST, ("openai:gpt-test",))
    assert (decided.reply.final_answer, decided.attempts, server.calls) == ("in time", 2, 2)
    assert len(sleep.waits) == 1


async def test_the_clients_own_timeout_is_retryable(server: OpenAIServer) -> None:
    server.reply_text("too late", delay_s=3)
    impatient = OpenAIChatModel(base_url=server.base_url, model="m", timeout_s=0.2)
    try:
        with pytest.raises(ModelError, match="timed out") as raised:
            await impatient.complete(REQUEST)
    finally:
        await impatient.aclose()
    assert raised.value.retryable


async def test_a_server_that_is_gone_is_a_retryable_error() -> None:
    with OpenAIServer() as gone:
        base_url = gone.base_url
    model = OpenAIChatModel(base_url=base_url, model="m")
    try:
        with pytest.raises(ModelError, match="cannot reach") as raised:
            await model.complete(REQUEST)
    finally:
        await model.aclose()
    assert raised.value.retryable


async def test_a_given_client_is_used_and_left_open(server: OpenAIServer) -> None:
    server.reply_text("shared")
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-other", max_retries=0)
    try:
        model = OpenAIChatModel(base_url=server.base_url, model="m", client=client)
        assert (await model.complete(REQUEST)).final_answer == "shared"
        await model.aclose()
        assert not client.is_closed()
        assert server.requests[0].headers["authorization"] == "Bearer sk-other"
    finally:
        await client.close()


async def test_the_server_falls_back_to_its_default_then_to_a_500(
    server: OpenAIServer, model: OpenAIChatModel
) -> None:
    seen: list[RecordedRequest] = []

    def default(request: RecordedRequest) -> dict[str, Any] | None:
        seen.append(request)
        return text_completion(f"default for {request['model']}") if len(seen) == 1 else None

    server.default = default
    assert (await model.complete(REQUEST)).final_answer == "default for gpt-test"
    with pytest.raises(ModelError, match="no scripted reply") as raised:
        await model.complete(REQUEST)
    assert raised.value.retryable
    assert [r["model"] for r in seen] == ["gpt-test", "gpt-test"]
    assert server.pending == 0
